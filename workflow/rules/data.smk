# Local regeneration of the datasets (nothing is downloaded).


def _size_flags(dataset):
    data = config["data"]
    if is_ogbench(dataset):
        flags = f"--episode-length {data['ogbench_episode_length']}"
        return flags + (f" --episodes {data['ogbench_episodes']}" if data["ogbench_episodes"] else "")
    return f"--steps {data['maze2d_steps']}" if data["maze2d_steps"] else ""


rule generate_ogbench:
    output:
        train=DATA + "/{dataset}.npz",
        val=DATA + "/{dataset}-val.npz",
        manifest=DATA + "/{dataset}.manifest.json",
    wildcard_constraints:
        dataset=r"(cube|puzzle)-[a-z0-9]+-(play|noisy)-v0",
    params:
        size=lambda wc: _size_flags(wc.dataset),
        seed=config["data_seed"],
    threads: config["data"]["workers"]
    log:
        LOGS + "/data/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.data generate {wildcards.dataset} --out {DATA} --seed {params.seed} --workers {threads} "
        "{params.size} --no-progress > {log} 2>&1"


rule generate_maze2d:
    output:
        train=DATA + "/{dataset}.hdf5",
        manifest=DATA + "/{dataset}.manifest.json",
    wildcard_constraints:
        dataset=r"maze2d-[a-z]+-v1",
    params:
        size=lambda wc: _size_flags(wc.dataset),
        seed=config["data_seed"],
    log:
        LOGS + "/data/{dataset}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.data generate {wildcards.dataset} --out {DATA} --seed {params.seed} {params.size} "
        "--no-progress > {log} 2>&1"


def dataset_files(wc):
    """Inputs of a training run: the generated files (AntMaze files are the user's, found by the reader)."""
    if is_ogbench(wc.dataset):
        return [f"{DATA}/{wc.dataset}.npz", f"{DATA}/{wc.dataset}-val.npz"]
    if wc.dataset.startswith("maze2d"):
        return [f"{DATA}/{wc.dataset}.hdf5"]
    return []
