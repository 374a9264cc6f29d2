"""Per-paper studies: one module or package per paper for what is not a method — its measurements, tables,
figures and training studies (imports point down: studies -> methods -> core)."""
