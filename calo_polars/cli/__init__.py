"""The command line: a thin click layer over the library, and what a person sees on stderr."""
