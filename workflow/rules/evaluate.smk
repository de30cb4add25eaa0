# The shared evaluation layer on each trained run (OGBench 5 tasks; D4RL normalised score).


rule evaluate:
    input:
        f"{RUN}/summary.json",
    output:
        f"{RUN}/eval_episodes.csv",
    params:
        episodes=lambda wc: eval_schedule(wc.dataset, config, wc.study, wc.method)["episodes_per_task"],
        envs=config["eval"]["num_envs"],
        workers=config["eval"].get("workers", 1),
        max_steps=config["eval"]["max_steps"],
        run=lambda wc, input: os.path.dirname(input[0]),
    threads: config["train"]["threads"]
    resources:
        runtime=time_limit("evaluate"),  # on CPUs: `python -m qhyer.evaluate` runs the policy on the CPU
    log:
        f"{LOGS}/evaluate/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/evaluate/{{study}}/{{variant}}/{{method}}/{{dataset}}/seed{{seed}}.tsv",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.evaluate {params.run:q} --episodes-per-task {params.episodes} --num-envs {params.envs} "
        "--workers {params.workers} --max-steps {params.max_steps} --threads {threads} --no-progress > {log:q} 2>&1"
