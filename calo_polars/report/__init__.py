"""Report: every output of an audit — summary.json, Parquet/CSV exports, alerts and the workbook."""
