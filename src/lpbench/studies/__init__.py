"""One module per paper: its measurements, tables and figures (what is not a method)."""
