# One training run per study × variant × method × dataset × seed. The declared output is summary.json, not
# the checkpoint: Snakemake deletes the outputs of a killed job, and the trainer resumes from
# checkpoints/last.pt when it is rerun.


rule train:
    input:
        dataset_files,
    output:
        f"{RUN}/summary.json",
    params:
        overrides=train_overrides,
        steps=train_steps,
        data=DATA,
        profile=PROFILE,
        episodes=config["eval"]["episodes_per_task"],
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpus"],
    log:
        f"{LOGS}/train/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/train/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.tsv",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.train method={wildcards.method} dataset={wildcards.dataset} seed={wildcards.seed} "
        "profile={params.profile} data_dir={params.data} run_dir=$(dirname {output}) "
        "train.steps={params.steps} train.threads={threads} train.progress=false eval.enabled=false eval.episodes_per_task={params.episodes} "
        "{params.overrides} > {log} 2>&1"
