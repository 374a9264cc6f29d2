"""Rule fidelity_tables: result JSONs -> results/tables/fidelity{,_encoder}.{csv,md} + results/figures/fidelity.*"""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench import fidelity
from lpbench.jobs import setup
from lpbench.plots import fidelity_by_method, save
from lpbench.tables import load_results

log = setup(snakemake)
results = load_results(snakemake.input.evals)
out = snakemake.output
df = fidelity.fidelity_table(results)
fidelity.write(df, out.csv, out.md, "Fidelity to FP32 per token (causal LMs): perplexity ratio, mean KL(P_fp32 ‖ Q) "
               "over the FP32 top-K + tail (a lower bound of the full KL), top-1 agreement and Δp = Q(target) − "
               "P_fp32(target) percentiles; 95 % block-bootstrap CIs")
enc = fidelity.encoder_table(results)
fidelity.write(enc, out.enc_csv, out.enc_md, "Fidelity to FP32 per token (encoders): cosine similarity and SQNR "
               "of the last hidden state; 95 % block-bootstrap CIs", encoder=True)
save(fidelity_by_method(df), out.png, out.pdf)
log.info("fidelity: %d causal rows, %d encoder rows", len(df), len(enc))
