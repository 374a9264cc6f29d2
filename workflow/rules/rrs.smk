# Rules of the rrs reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
