# Rules of the iterl2norm reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
