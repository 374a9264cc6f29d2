# Rules of the slanc reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
