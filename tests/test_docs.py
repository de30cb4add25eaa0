"""The README and docs/ cannot go stale silently (issue 21 item 5).

Every relative link (and its #anchor) and every repository path they name exists; every command of a fenced `bash`
block parses: `--help` of each `python -m` module and script named (each once, all in one interpreter), the full
command line against the parser of the CLIs that expose one (`build_parser`), pytest's paths and markers, `make`
targets against the Makefile, and one `snakemake -n` at the smoke budget for every target named. Also: every key of
the workflow config schema is explained in docs/workflow.md, every verdict the code can emit is in docs/verdicts.md,
and docs/claims.md is what tools/claims_page.py writes from claims.yaml. A failure names the file and line.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
# CHANGELOG.md names paths that no longer exist (that is its job): its links are checked, its paths and commands not.
CURRENT_DOCS = [doc for doc in DOCS if doc.name != "CHANGELOG.md"]
REPO_PATH = re.compile(r"(?<![\w./-])((?:qhyer|baselines|workflow|tests|tools|benchmarks|requirements|paper_figures|"
                       r"docs|\.ci)/[\w./-]*|Snakefile|Makefile|environment\.yml|pyproject\.toml)(::\w+)?")
PLACEHOLDER = re.compile(r"[*<>{}\[\]…]|\.\.\.")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
# snakemake options that take values (the docs' commands put `--` before targets when a multi-valued one is used)
SNAKEMAKE_VALUED = {"--cores", "-c", "--jobs", "-j", "--profile", "--report", "--configfile", "--config", "--resources",
                    "--set-resources", "--directory", "-d"}
# No run of the smoke budget reads these: dry runs plan the same whatever is on disk here.
SMOKE_DRY_RUN = ["--config", "budget=smoke", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data"]


def where(doc: Path, text: str, offset: int) -> str:
    return f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(doc: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def bash_commands(doc: Path) -> list[tuple[str, list[str]]]:
    """(file:line, argv) of every command in the doc's fenced bash blocks: continuation lines joined, comments and
    leading VAR=value assignments dropped, `&&`/`;` chains split."""
    text = doc.read_text()
    found = []
    for block in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        offset = block.start(1)
        for line in block.group(1).replace("\\\n", " ").split("\n"):
            commands = [[]]
            for token in shlex.split(line, comments=True):
                commands.append([]) if token == "&&" else commands[-1].append(token)
            for parts in commands:
                while parts and re.match(r"^[A-Z_][A-Z0-9_]*=", parts[0]):
                    parts = parts[1:]
                if parts:
                    found.append((where(doc, text, offset), parts))
            offset += len(line) + 1
    return found


def python_invocation(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """('module' | 'script', name, args) of a `python ...` / `.venv/bin/python ...` command."""
    if not argv or not re.fullmatch(r"(\S*/)?python3?", argv[0]) or len(argv) < 2:
        return None
    if argv[1] == "-m" and len(argv) > 2:
        return "module", argv[2], argv[3:]
    return "script", argv[1], argv[2:]


def snakemake_targets(argv: list[str]) -> list[str]:
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    targets, skip = [], False
    for token in argv[1:]:
        if skip:
            skip = False
        elif token in SNAKEMAKE_VALUED:
            skip = True
        elif not token.startswith("-"):
            targets.append(token)
    return targets


def all_commands() -> list[tuple[str, list[str]]]:
    return [found for doc in CURRENT_DOCS for found in bash_commands(doc)]


# One interpreter for every CLI: torch is imported once. Prints {"help": {name: [exit code, output]}, "parse":
# [[where, error]]} as JSON on its last line.
CLI_CHECK = r'''
import contextlib, importlib, io, json, os, runpy, sys
spec = json.loads(sys.argv[1])
result = {"help": {}, "parse": []}
def exit_code(run):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            run()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        return code, out.getvalue()
    except Exception as err:
        return 1, out.getvalue() + repr(err)
    return 0, out.getvalue()
for kind, name in spec["help"]:
    sys.argv = [name, "--help"]
    sys.path[:0] = [] if kind == "module" else [os.path.dirname(os.path.abspath(name))]  # as `python script.py`
    code, out = exit_code(lambda: runpy.run_module(name, run_name="__main__", alter_sys=True) if kind == "module"
                          else runpy.run_path(name, run_name="__main__"))
    result["help"][name] = [code, out[-2000:]]
for place, module, args in spec["parse"]:
    parser = importlib.import_module(module).build_parser()
    code, out = exit_code(lambda: parser.parse_args(args))
    if code:
        result["parse"].append([place, out.strip().splitlines()[-1] if out.strip() else "exit %s" % code])
print(json.dumps(result))
'''


def has_parser(module: str) -> bool:
    source = ROOT / (module.replace(".", "/") + ".py")
    package_main = ROOT / module.replace(".", "/") / "__main__.py"
    return any(p.exists() and "def build_parser" in p.read_text() for p in (source, package_main))


def run_command_checks() -> dict:
    """Runs both slow checks at once (the CLIs' interpreter and one snakemake dry run) and collects them."""
    helps, parses, targets = {}, [], {}
    for place, argv in all_commands():
        if invocation := python_invocation(argv):
            kind, name, args = invocation
            if name == "pytest":
                continue
            helps.setdefault((kind, name), place)
            module = name if kind == "module" else ""
            # a command with placeholders is a pattern, not a line to run: only its module's --help is checked
            if module and has_parser(module) and not any(PLACEHOLDER.search(a) for a in args if "*" not in a):
                parses.append([place, module if not (ROOT / module.replace(".", "/") / "__main__.py").exists()
                               else module + ".__main__", args])
        elif argv[0] == "snakemake":
            for target in snakemake_targets(argv):
                targets.setdefault(target, place)
    spec = {"help": [list(key) for key in helps], "parse": parses}
    cli = subprocess.Popen([sys.executable, "-c", CLI_CHECK, json.dumps(spec)], cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dry = subprocess.Popen([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--nolock", *SMOKE_DRY_RUN,
                            "--", *targets], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cli_out, cli_err = cli.communicate()
    dry_out, dry_err = dry.communicate()
    assert cli.returncode == 0, f"the CLI check itself failed:\n{cli_err[-3000:]}"
    return {"cli": json.loads(cli_out.strip().splitlines()[-1]), "helps": helps, "targets": targets,
            "dry": (dry.returncode, dry_out + dry_err)}


def test_relative_links_and_anchors_exist():
    broken = []
    for doc in DOCS:
        text = doc.read_text()
        for match in LINK.finditer(text):
            target = match.group(2)
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.append(f"{where(doc, text, match.start())}: link to missing {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{where(doc, text, match.start())}: no heading '#{anchor}' in {path or doc.name}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_repository_path_named_exists():
    named = []
    for doc in CURRENT_DOCS:
        text = doc.read_text()
        for match in REPO_PATH.finditer(text):
            path = match.group(1).rstrip(".,:;")
            if not PLACEHOLDER.search(text[match.start():match.end() + 1]):
                named.append((where(doc, text, match.start()), path, (match.group(2) or "")[2:]))
    ignored = set(subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=ROOT, text=True,
                                 input="\n".join(p for _, p, _ in named), capture_output=True).stdout.split())
    missing = []
    for place, path, test in named:
        if path in ignored:
            continue  # a generated output (results/, paper_figures/*.png, ...): named, not committed
        if not (ROOT / path).exists():
            missing.append(f"{place}: {path} does not exist")
        elif test and not re.search(rf"^def {test}\(", (ROOT / path).read_text(), flags=re.M):
            missing.append(f"{place}: {path} has no test {test}")
    assert named, "no repository path found in the docs: the pattern is broken"
    assert not missing, "paths named in the docs:\n" + "\n".join(missing)


def test_every_command_named_runs_as_written():
    """One test for the slow checks, so that parallel workers (pytest-xdist) run them once: `--help` of every
    python CLI named, each command line against its CLI's parser, one snakemake dry run of every target named."""
    checks = run_command_checks()
    problems = [f"{place}: `{name} --help` exited {checks['cli']['help'][name][0]}: "
                f"{checks['cli']['help'][name][1].strip().splitlines()[-1:]}"
                for (kind, name), place in checks["helps"].items() if checks["cli"]["help"][name][0] != 0]
    problems += [f"{place}: its CLI refuses it: {error}" for place, error in checks["cli"]["parse"]]
    code, out = checks["dry"]
    if code:
        error = out.rpartition("Building DAG of jobs...")[2]  # after the banner, which repeats the command
        unknown = [f"{place}: target '{target}'" for target, place in checks["targets"].items()
                   if re.search(rf"(?<![\w/.-]){re.escape(target)}(?![\w/.-])", error)]
        problems += ["snakemake -n at the smoke budget failed for the docs' targets:",
                     *(unknown or [f"{place}: {target}" for target, place in checks["targets"].items()]),
                     error.strip()[-2000:]]
    assert checks["helps"] and {"main_tables", "all", "verify"} <= set(checks["targets"]), checks["targets"]
    assert not problems, "commands in the docs' bash blocks:\n" + "\n".join(problems)


def test_pytest_and_make_commands_name_what_exists():
    makefile = (ROOT / "Makefile").read_text()
    make_targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    markers = set(re.findall(r'^\s+"(\w+):', (ROOT / "pyproject.toml").read_text(), flags=re.M))
    wrong = []
    for place, argv in all_commands():
        if argv[0] == "make":
            wrong += [f"{place}: no make target '{t}'" for t in argv[1:] if "=" not in t and t not in make_targets]
        invocation = python_invocation(argv)
        if invocation and invocation[1] == "pytest":
            args = invocation[2]
            for i, arg in enumerate(args):
                if args[i - 1:i] == ["-m"] and arg not in markers:
                    wrong.append(f"{place}: no pytest marker '{arg}'")
                elif arg.startswith("tests") and not (ROOT / arg.split("::")[0]).exists():
                    wrong.append(f"{place}: no test path {arg}")
    assert not wrong, "\n".join(wrong)


def schema_paths(node: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every property of the schema (a $ref counts as a leaf)."""
    paths = []
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(sub, dict) and "$ref" not in sub:
            paths += schema_paths(sub, path + ".")
    return paths


def test_every_workflow_config_key_is_explained():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    page = (ROOT / "docs/workflow.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w.]+)` \|.*$", page, flags=re.M)}
    unexplained = []
    for path in schema_paths(schema):
        parent, _, leaf = path.rpartition(".")
        if path not in rows and f"`{leaf}`" not in rows.get(parent, ""):
            unexplained.append(path)
    assert not unexplained, f"docs/workflow.md, section 'Every config key', lacks a row for: {unexplained}"


def module_strings(path: Path, known: dict) -> dict:
    """Module-level names bound to strings or tuples of them (`A, B = "a", "b"`; `V = (*mod.V, A)`), read from the
    source without importing it (importing the report imports torch); `known`: names of other modules."""
    names = dict(known)

    def value(node: ast.expr) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return names.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return names.get(f"{node.value.id}.{node.attr}")
        if isinstance(node, ast.Starred):
            return value(node.value)
        if isinstance(node, ast.Tuple):
            items = [(e, value(e)) for e in node.elts]
            if any(isinstance(e, ast.Starred) and not isinstance(v, tuple) for e, v in items):
                return None  # unpacks a name defined elsewhere
            return tuple(x for e, v in items for x in (v if isinstance(e, ast.Starred) else (v,)))
        return None

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                names[target.id] = value(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = zip(target.elts, node.value.elts, strict=True)
                names.update({t.id: value(v) for t, v in pairs if isinstance(t, ast.Name)})
    return names


def test_every_verdict_the_code_emits_is_explained():
    report = ROOT / "qhyer/report"
    decided = module_strings(report / "verdicts.py", {})
    claims = module_strings(report / "claims.py", {"verdicts.VERDICTS": decided["VERDICTS"]})
    published = module_strings(report / "published.py", {})
    emitted = [*claims["VERDICTS"], *(published[n] for n in ("QUOTED_CORRECTLY", "MISQUOTED", "NOT_VENDORED"))]
    assert all(isinstance(v, str) for v in emitted) and "reproduced" in emitted, emitted
    page = (ROOT / "docs/verdicts.md").read_text()
    table_rows = [line for line in page.splitlines() if line.startswith("| `")]
    lacking = [v for v in emitted if not any(f"`{v}`" in row.split("|")[1] for row in table_rows)]
    assert not lacking, f"docs/verdicts.md has no table row for the verdicts {lacking}"


def test_claims_page_is_generated_from_the_claims_file():
    spec = importlib.util.spec_from_file_location("claims_page", ROOT / "tools/claims_page.py")
    claims_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims_page)
    expected = claims_page.render(yaml.safe_load(claims_page.CLAIMS_FILE.read_text()))
    assert claims_page.PAGE.read_text() == expected, (
        "docs/claims.md is stale (qhyer/report/claims.yaml changed): run `python tools/claims_page.py`")


def test_readme_is_short_and_reaches_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 200, f"README.md has {readme.count(chr(10))} lines (at most 200)"
    linked = {(ROOT / m.group(2).partition("#")[0]).resolve() for m in LINK.finditer(readme)}
    unreachable = [doc.relative_to(ROOT) for doc in DOCS[1:] if doc.resolve() not in linked]
    assert not unreachable, f"README.md's map does not link {unreachable}"


def test_every_docs_page_starts_with_its_commands_and_the_readme_is_undated():
    late = []
    for doc in (ROOT / "docs").glob("*.md"):
        body = re.sub(r"<!--.*?-->", "", doc.read_text(), flags=re.S).split("\n", 1)[1].lstrip()
        if not body.startswith("```bash"):
            late.append(str(doc.relative_to(ROOT)))
    assert not late, f"pages whose first block after the title is not their commands (a ```bash block): {late}"
    dates = re.findall(r"\b20\d\d-\d\d-\d\d\b", (ROOT / "README.md").read_text())
    assert not dates, f"README.md is dated ({dates}): dated measurements go to docs/results.md or docs/performance.md"

