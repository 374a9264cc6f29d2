"""Per-paper studies: one package per paper for what is not a method — its measurements, tables, figures and
training studies (imports point down: studies -> methods -> core). Each package's ``__init__`` holds what the
paper's rule file reads when the Snakefile is parsed (``targets`` / ``settings``; shared helpers in
:mod:`lpbench.studies.selection`) and imports no torch; the analysis lives in its submodules."""
