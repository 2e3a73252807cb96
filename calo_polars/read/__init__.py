"""Read: the user's inputs (zip, folder, .gz, plain log, s3://) turned into decoded log files, every read bounded."""
