# Rules of the tender reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
