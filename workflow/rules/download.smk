rule download_model:
    """Fetch a model from its source and convert it once to the canonical FP32 HF directory; its
    lpbench_model.json records the sha256 of every file (content identity for every later rule)."""
    input:
        unpack(local_source_input("models")),
    output:
        meta="resources/models/{model}/lpbench_model.json",
    log:
        "logs/download_model/{model}.log",
    benchmark:
        "results/benchmarks/download_model/{model}.tsv"
    priority: 10  # the chain to the GPTQ weights is the pipeline's critical path: start it first
    conda:
        ENV
    resources:
        mem_mb=8000,
    params:
        entry=lambda wc: config["models"][wc.model],
        work=lambda wc: f"resources/downloads/models/{wc.model}",
    script:
        "../../scripts/download_model.py"


rule download_corpus:
    """Fetch a corpus and write its non-overlapping calibration and evaluation texts (hashed in corpus.json)."""
    input:
        unpack(local_source_input("corpora")),
    output:
        meta="resources/corpora/{corpus}/corpus.json",
        calibration="resources/corpora/{corpus}/calibration.txt",
        evaluation="resources/corpora/{corpus}/evaluation.txt",
    log:
        "logs/download_corpus/{corpus}.log",
    benchmark:
        "results/benchmarks/download_corpus/{corpus}.tsv"
    conda:
        ENV
    params:
        entry=lambda wc: config["corpora"][wc.corpus],
        work=lambda wc: f"resources/downloads/corpora/{wc.corpus}",
    script:
        "../../scripts/download_corpus.py"


rule tokenize:
    """Tokenize a corpus split once per (model, corpus); the text is checked against corpus.json, and
    the token file's sidecar records the hashes of the text, the tokenizer and the tokens."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        text="resources/corpora/{corpus}/{split}.txt",
        corpus="resources/corpora/{corpus}/corpus.json",
    output:
        tokens="resources/tokens/{model}/{corpus}/{split}.pt",
        meta="resources/tokens/{model}/{corpus}/{split}.json",
    log:
        "logs/tokenize/{model}/{corpus}/{split}.log",
    benchmark:
        "results/benchmarks/tokenize/{model}/{corpus}/{split}.tsv"
    priority: 10  # the chain to the GPTQ weights is the pipeline's critical path: start it first
    conda:
        ENV
    script:
        "../../scripts/tokenize.py"
