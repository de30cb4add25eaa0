# Local regeneration of the datasets (nothing is downloaded).


rule generate_ogbench:
    output:
        train=f"{DATA}/{{dataset}}.npz",
        val=f"{DATA}/{{dataset}}-val.npz",
        manifest=f"{DATA}/{{dataset}}.manifest.json",
    wildcard_constraints:
        dataset=datasets_of_family("ogbench"),
    params:
        size=lambda wc: _size_flags(wc.dataset),
        seed=config["data_seed"],
        out=lambda wc, output: os.path.dirname(output.train),
    threads: config["data"]["workers"]
    log:
        f"{LOGS}/data/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/data/{{dataset}}.tsv",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.data generate {wildcards.dataset} --out {params.out:q} --seed {params.seed} --workers {threads} "
        "{params.size} --no-progress > {log:q} 2>&1"


rule generate_maze2d:
    output:
        train=f"{DATA}/{{dataset}}.hdf5",
        manifest=f"{DATA}/{{dataset}}.manifest.json",
    wildcard_constraints:
        dataset=datasets_of_family("maze2d"),
    params:
        size=lambda wc: _size_flags(wc.dataset),
        seed=config["data_seed"],
        out=lambda wc, output: os.path.dirname(output.train),
    log:
        f"{LOGS}/data/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/data/{{dataset}}.tsv",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.data generate {wildcards.dataset} --out {params.out:q} --seed {params.seed} {params.size} "
        "--no-progress > {log:q} 2>&1"


