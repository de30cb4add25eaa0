# One training run per study × variant × method × dataset × seed. The declared output is summary.json, not
# the checkpoint: Snakemake deletes the outputs of a killed job, and the trainer resumes from
# checkpoints/last.pt when it is rerun; a rerun because params changed restarts from zero instead
# (train.on_changed_config=restart: that checkpoint belongs to the old config). The checkpoint's config includes the
# sha256 of the data it read, so a dataset regenerated from another data_seed (its manifest, an input, changes)
# retrains the run from zero. Identity (budget, study, variant) is passed as fields the run records.
from qhyer.report.cost import train_retries


rule train:
    input:
        dataset_files,
        # the generated dataset's manifest (qhyer/data/manifest.py): regenerating the data reruns the training
        lambda wc: [f"{DATA}/{wc.dataset}.manifest.json"] if get_spec(wc.dataset).regenerable else [],
    output:
        f"{RUN}/summary.json",
    params:
        overrides=train_overrides,
        steps=run_train_steps,
        data=DATA,
        budget=BUDGET,
        run=lambda wc, output: os.path.dirname(output[0]),
    threads: config["train"]["threads"]
    # Resubmission until the run's own steps are done: a job over its SLURM time limit is TIMEOUT (SIGTERM first:
    # it checkpoints and exits 143) and its retry resumes from the checkpoint. From the plan: None while every job
    # fits one limit (--retries / the profile's then apply, as before), else the longest job's attempts + the
    # profile's retries as spare (qhyer/report/cost.py train_resubmission; `cost --budget` prints it). Only a time
    # limit is resubmitted to train on: a retry of a run that stopped on an error exits with it at once
    # (train.attempt, qhyer/run_folder.py failure_kept).
    retries: train_retries(config)
    resources:
        gpu=config["train"]["gpus"],
        runtime=time_limit("train"),
        attempt=lambda wc, attempt: attempt,
    log:
        f"{LOGS}/train/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.tsv",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.train method={wildcards.method} dataset={wildcards.dataset} seed={wildcards.seed} "
        "budget={params.budget:q} study={wildcards.study} variant={wildcards.variant} data_dir={params.data:q} "
        "run_dir={params.run:q} train.steps={params.steps} train.threads={threads} train.progress=false "
        "eval.enabled=false train.on_changed_config=restart train.attempt={resources.attempt} {params.overrides} "
        "> {log:q} 2>&1"
