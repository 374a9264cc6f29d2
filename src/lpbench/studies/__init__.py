"""Per-paper studies: measurements, tables, figures and training studies (studies -> methods -> core)."""
