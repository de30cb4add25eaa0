"""The front page of `snakemake --report` (workflow/report/workflow.rst), rendered as Snakemake renders it: Jinja2
templating with `snakemake.config`, then docutils to HTML. A docutils warning would show on the page as a "System
Message" box, so any warning fails; so does a config key the page reads that the workflow config lacks."""

from __future__ import annotations

import io
import re
from pathlib import Path

import jinja2
import pytest
import yaml
from docutils.core import publish_parts

from qhyer.report.claims import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "workflow" / "report" / "workflow.rst"
# publish_parts(writer_name=...) is the call Snakemake makes; docutils announces the argument's removal in 2.0
pytestmark = pytest.mark.filterwarnings("ignore:Argument \"writer_name\":PendingDeprecationWarning")
BUDGETS = sorted(p.stem for p in (ROOT / "workflow" / "config" / "budgets").glob("*.yaml"))


def render(text: str, config: dict) -> tuple[str, str]:
    """(HTML body, docutils warnings) of the page under `config`, templated as snakemake/report/__init__.py does
    (`Environment(trim_blocks=True, lstrip_blocks=True)`, a `snakemake` object whose `config` is the workflow's);
    undefined names fail here where Snakemake would print nothing."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    snakemake = type("Snakemake", (), {"config": config})
    warnings = io.StringIO()
    html = publish_parts(env.from_string(text).render(snakemake=snakemake), writer_name="html",
                         settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5})
    return html["html_body"], warnings.getvalue()


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_report_page_renders_without_warnings(budget):
    # `--config budget=...` over config.yaml: the config Snakemake hands the page (the budget file is merged into
    # a copy in workflow/rules/common.smk)
    config = {**yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text()), "budget": budget}
    html, warnings = render(PAGE.read_text(), config)
    assert warnings == ""
    assert f"budget {budget}\n(workflow/config/budgets/{budget}.yaml)" in re.sub("<[^>]+>", "", html)


def test_the_report_page_names_every_verdict():
    text = PAGE.read_text()
    assert [v for v in VERDICTS if f"``{v}``" not in text] == []


def test_a_broken_page_is_caught():
    """What the page once did: an unclosed inline literal, and a config key the workflow config no longer has."""
    _, warnings = render("budget ``{{ snakemake.config['budget'] }}`` and ``unclosed.", {"budget": "quick"})
    assert "Inline literal start-string without end-string" in warnings
    with pytest.raises(jinja2.UndefinedError):
        render('profile ``{{ snakemake.config["profile"] }}``.', {"budget": "quick"})
