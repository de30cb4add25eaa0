# The staged verification's plan (target `verify`, workflow/rules/verify.smk): the selected claims' runs
# (qhyer/report/plan.py) and each stage's seeds, read from the previous stage's checkpoint.
import json

from qhyer.errors import UserError
from qhyer.report.claims import load_claims
from qhyer.report.plan import first_stage_seeds, load_summaries, plan_claims, stage_run_dirs
from qhyer.report.verdicts import SequentialDesign

VERIFY = f"results/verify/{BUDGET}"
VERIFY_CONFIG = config["verify"]
try:
    VERIFY_DESIGN = SequentialDesign(VERIFY_CONFIG["first_seeds"], VERIFY_CONFIG["step_seeds"],
                                     VERIFY_CONFIG["max_seeds"])
    VERIFY_PLANS = plan_claims(load_claims(VERIFY_CONFIG["claims_file"]), config, config["claims"],
                               load_summaries(VERIFY_CONFIG["baselines"], VERIFY_CONFIG["published_file"]))
except UserError as err:
    raise WorkflowError(f"invalid verify config: {err}") from None


def verify_seeds(stage):
    """{claim: seeds} of a stage: stage 1's from the config, a later one's from the previous stage's decision."""
    if stage == 1:
        return first_stage_seeds(VERIFY_PLANS, VERIFY_DESIGN.first_seeds)
    with open(checkpoints.verify_stage.get(stage=str(stage - 1)).output.next) as plan:
        return json.load(plan)["seeds"]


def verify_stage_inputs(wc):
    stage = int(wc.stage)
    runs = eval_files(stage_run_dirs(config, VERIFY_PLANS, verify_seeds(stage)))
    return {"runs": runs, "previous": [f"{VERIFY}/stage{stage - 1}/next_plan.json"] if stage > 1 else []}


def verify_final_stage(wc):
    """The claims check of the first stage whose decision leaves no claim undecided."""
    stage = 1
    while True:
        with open(checkpoints.verify_stage.get(stage=str(stage)).output.next) as plan:
            if json.load(plan)["done"]:
                return f"{VERIFY}/stage{stage}/claims_check.csv"  # its .md beside it
        stage += 1
