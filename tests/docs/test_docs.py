"""The documentation stays true: README.md and docs/*.md are checked against the repository and the CLI.

- every relative link (and image) points at a file that exists, and every ``#anchor`` names a heading of its
  target page (slugs computed here the way GitHub computes them, independently of any Markdown library);
- every command shown in a shell code block (and every inline command) that runs ``run_dcase2020.py``,
  ``run_dcase2021.py``, ``asd-dcase2020/2021`` or ``asd`` is accepted by the current argument parser, without
  running anything (``asdcore.cli.parse_only``, or the ``build_parser()`` of a console script's module); a usage synopsis (``[--flag A|B]``) must name only flags and
  choices the parser knows;
- README's quoted output of its first command is what that command prints today on the built-in synthetic
  data (the command is run; the printed precision is the only tolerance).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}


# ----------------------------------------------------------------------------------------------------------
# Markdown, read by hand


def split_blocks(text: str):
    """(prose lines with their numbers, code blocks as (language, first line number, lines))."""
    prose, blocks = [], []
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = (match.group(2)[0], len(match.group(2)), match.group(3).lower(), number, [])
            else:
                prose.append((number, line))
        elif match and match.group(2)[0] == fence[0] and len(match.group(2)) >= fence[1] and not match.group(3):
            blocks.append((fence[2], fence[3], fence[4]))
            fence = None
        else:
            fence[4].append(line)
    assert fence is None, f"a code block opened on line {fence[3]} is never closed"
    return prose, blocks


def without_code_spans(line: str) -> str:
    return re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = re.sub(r"<[^>]+>", "", text) if not re.search(r"`[^`]*<", text) else text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w: Unicode letters, digits and '_'
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_blocks(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose:
        match = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path):
    """(line number, target) of every Markdown link and image outside code."""
    prose, _ = split_blocks(path.read_text(encoding="utf-8"))
    for number, line in prose:
        for match in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", without_code_spans(line)):
            yield number, match.group(1)


def test_slugs_follow_github_rules():
    assert github_slug("Choices the paper leaves open") == "choices-the-paper-leaves-open"
    assert github_slug("With JAX or PyTorch") == "with-jax-or-pytorch"
    assert github_slug("Results (synthetic data, quick mode)") == "results-synthetic-data-quick-mode"
    assert github_slug("Watching training: progress and ETA, TensorBoard, training curves") == \
        "watching-training-progress-and-eta-tensorboard-training-curves"
    assert github_slug("Sub-cluster AdaCos (Wilkinghoff, DCASE 2020): `run_dcase2020.py subcluster-adacos`") == \
        "sub-cluster-adacos-wilkinghoff-dcase-2020-run_dcase2020py-subcluster-adacos"
    assert github_slug("Reading batches from a memory map (10 % target)") == \
        "reading-batches-from-a-memory-map-10--target"


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        for number, target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            destination = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}:{number}: {target}"
            if not destination.exists():
                broken.append(f"{where}: no file {destination.relative_to(ROOT) if destination.is_relative_to(ROOT) else destination}")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{where}: no heading with the anchor #{anchor} in {destination.relative_to(ROOT)}")
    assert not broken, "broken links in the documentation:\n" + "\n".join(broken)


def test_the_link_check_sees_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#no-such) [file](missing.md)\n"
                    "```bash\n[not a link](#inside-code)\n```\n", encoding="utf-8")
    assert anchors(page) == {"title", "a-section"}
    assert [target for _, target in links(page)] == ["#a-section", "#no-such", "missing.md"]


# ----------------------------------------------------------------------------------------------------------
# Commands


COMMAND_START = re.compile(
    r"(?:(?<=[\s\"'(;&|])|^)(?:python3?\s+(?:-m\s+)?)?(run_dcase20\d\d\.py|asd-dcase20\d\d|asd)(?=\s|$)")


def _command_text(text: str, start: int, end_of_match: int) -> str:
    """The command from ``start`` up to the end of its shell segment."""
    before = text[:start].rstrip()
    rest = text[end_of_match:]
    stops = [r"\s\|\s", r"&&", r";", r"\s#", r"\|\|"]
    if before.endswith('"'):
        stops.append(r"(?<!\\)\"")
    if before.endswith("'"):
        stops.append(r"'")
    if before.endswith("$("):
        stops.append(r"\)")
    for match in re.finditer("|".join(stops), rest):
        if rest[:match.start()].count("[") == rest[:match.start()].count("]"):  # not inside a [--a | --b] synopsis
            return text[start:end_of_match] + rest[:match.start()]
    return text[start:end_of_match] + rest


def shell_commands():
    """(where, command text) of every CLI command shown in the documentation."""
    found = []
    for page in PAGES:
        in_page = []
        prose, blocks = split_blocks(page.read_text(encoding="utf-8"))
        for language, first, lines in blocks:
            if language not in SHELL_LANGUAGES:
                continue
            joined, numbers = [], []
            for offset, line in enumerate(lines):
                if joined and joined[-1].endswith("\\"):
                    joined[-1] = joined[-1][:-1] + " " + line.strip()
                else:
                    joined.append(line)
                    numbers.append(first + 1 + offset)
            for number, line in zip(numbers, joined):
                if line.lstrip().startswith("#"):
                    continue
                for match in COMMAND_START.finditer(line):
                    in_page.append((number, _command_text(line, match.start(), match.end())))
        for number, line in prose:
            for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
                span = span.replace("\\|", "|")
                match = COMMAND_START.match(span)
                arguments = span[match.end():].split() if match else []
                # a command line: "python ..." with arguments, or a console script with more than a
                # sub-command (`asd score` names a command; `asd score SYSTEM_DIR PATH` is one)
                if match and (len(arguments) >= 1 if match.group(0).startswith("python") else len(arguments) >= 2):
                    in_page.append((number, span))
        found += [(f"{page.relative_to(ROOT)}:{number}", command) for number, command in sorted(in_page)]
    return found


def _entry_points() -> dict[str, str]:
    """console script name -> "module:function", read from setup.py."""
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r"[\"']\s*([\w.-]+)\s*=\s*([\w.]+:[\w.]+)\s*[\"']", text))


def _parser_for(program: str):
    """A function argv -> Namespace that parses like ``program`` and runs nothing."""
    from asdcore import cli

    match = re.fullmatch(r"(?:run_dcase|asd-dcase)(20\d\d)(?:\.py)?", program)
    if match:
        year = int(match.group(1))
        module = importlib.import_module(f"run_dcase{year}")

        def parse(argv):
            args = cli.parse_only(year, module.COMMANDS, argv)
            method = getattr(importlib.import_module(module.COMMANDS[argv[0]][0]), "METHOD", None) \
                if argv[0] in module.COMMANDS else None
            if method is not None:  # the flags' values as the run reads them (Keras-free settings code)
                method.overrides(args)
                method.experiment_name(args)
            return args

        return parse, lambda name: cli.command_parser(year, module.COMMANDS, name)
    target = _entry_points().get(program)
    assert target, f"the docs show the command {program!r}, but setup.py installs no console script of that name"
    module = importlib.import_module(target.split(":")[0])
    if hasattr(module, "parse_only") and hasattr(module, "command_parser"):
        return module.parse_only, module.command_parser
    assert hasattr(module, "build_parser"), (
        f"{target.split(':')[0]} (console script {program!r}) needs build_parser() (one argparse parser, "
        "sub-commands as sub-parsers) or parse_only(argv) and command_parser(name), so that the docs check can "
        "parse the commands shown in the docs without running them")

    def command_parser(name):
        parser = module.build_parser()
        for action in parser._actions:  # noqa: SLF001 - argparse keeps its sub-parsers there
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                if name not in action.choices:
                    raise ValueError(f"{program} has no command {name!r}; commands: {', '.join(action.choices)}")
                return action.choices[name]
        return parser

    return (lambda argv: module.build_parser().parse_args(argv)), command_parser


PLACEHOLDER_VARIABLE = re.compile(r"\\?\$(\{[A-Za-z_]\w*\}|[A-Za-z_]\w*)")


#: A variable named FLAGS (or ending in _FLAGS) stands for optional further flags: none are assumed.
FLAGS_VARIABLE = re.compile(r"(?<![\w\"'])\$\{?(?:\w+_)?FLAGS\}?(?![\w\"'])")


def _tokens(command: str) -> list[str]:
    command = FLAGS_VARIABLE.sub("", command)
    command = PLACEHOLDER_VARIABLE.sub("0", command)  # shell variables ($RUN, $SLURM_ARRAY_TASK_ID): any value
    command = re.sub(r"\$\(.*?\)", "0", command)
    tokens = shlex.split(command, comments=True)
    while tokens and tokens[0] in {"python", "python3", "-m"}:
        tokens = tokens[1:]
    return tokens


def _is_synopsis(tokens: list[str]) -> bool:
    return any(token.startswith("[") or ("|" in token and not token.startswith(("/", "."))) for token in tokens)


def check_command(command: str) -> str | None:
    """None when the parser accepts ``command``; else the reason."""
    tokens = _tokens(command)
    parse, command_parser = _parser_for(tokens[0])
    argv = tokens[1:]
    try:
        parser = command_parser(argv[0] if argv else "")
    except ValueError as error:
        return str(error)
    if _is_synopsis(argv):
        known = {option: action for action in parser._actions for option in action.option_strings}  # noqa: SLF001
        problems = []
        for index, token in enumerate(argv[1:], 1):
            flag = token.strip("[]").split("=")[0]
            if not flag.startswith("--"):
                continue
            if flag not in known:
                problems.append(f"unknown flag {flag}")
                continue
            action = known[flag]
            following = argv[index + 1].strip("[]") if index + 1 < len(argv) else ""
            if action.choices and "|" in following:
                problems += [f"{flag} does not accept {choice!r}" for choice in following.split("|")
                             if choice not in action.choices]
        return "; ".join(problems) or None
    from asdcore.errors import ASDError

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            parse(argv)
    except SystemExit as exit_:
        return f"rejected by the parser (exit {exit_.code}): {errors.getvalue().strip().splitlines()[-1:]}"
    except ASDError as error:
        return f"a flag's value is rejected: {error}"
    return None


def test_documented_commands_are_found():
    commands = [command for _, command in shell_commands()]
    assert len(commands) >= 20
    assert any(c.startswith("python run_dcase2020.py subcluster-adacos --experiment subclusters") for c in commands)
    assert any("train-unit" in c for c in commands) and any("assemble" in c for c in commands)


def test_every_documented_command_parses_with_the_current_cli():
    failures = []
    for where, command in shell_commands():
        reason = check_command(command)
        if reason:
            failures.append(f"{where}: {command}\n    {reason}")
    assert not failures, "commands in the docs that the CLI does not accept:\n" + "\n".join(failures)


def test_the_command_check_rejects_a_renamed_flag_and_a_wrong_choice():
    assert check_command("python run_dcase2020.py ddcsad --losses bce --quick") is None
    assert "rejected" in check_command("python run_dcase2020.py ddcsad --no-such-flag 1")
    assert check_command("python run_dcase2021.py smoothing [--experiment table|fraction|all]") is None
    assert "unknown flag --no-such" in check_command("python run_dcase2021.py smoothing [--no-such N]")
    assert "does not accept 'tables'" in check_command("python run_dcase2021.py smoothing [--experiment tables|all]")
    assert check_command("python run_dcase2020.py train-unit $RUN --index \\$SLURM_ARRAY_TASK_ID") is None
    assert check_command("python run_dcase2020.py ddcsad --anomalies 0,1,2,4,...,64") is None
    assert "value is rejected" in check_command("python run_dcase2020.py ddcsad --anomalies 0,1,x")


# ----------------------------------------------------------------------------------------------------------
# README's first command and the output it quotes


OUTPUT_BLOCK = re.compile(r"<!-- first-command-output.*?-->\s*```text\n(.*?)```\s*<!-- /first-command-output -->", re.S)


def first_command() -> str:
    """The first CLI command of README's first shell code block that has one."""
    _, blocks = split_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    for language, _, lines in blocks:
        for line in lines if language in SHELL_LANGUAGES else []:
            match = COMMAND_START.search(line)
            if match:
                return _command_text(line, match.start(), match.end()).strip()
    raise AssertionError("README.md shows no command in a shell code block")


def quoted_rows() -> list[list[str]]:
    match = OUTPUT_BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no <!-- first-command-output --> block"
    return [line.split() for line in match.group(1).strip().splitlines()]


def printed_table(output: str, header: list[str]) -> list[list[str]]:
    """The rows of the table whose header line is ``header`` in the command's console output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == header)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip() or not line.startswith(" "):
            break
        rows.append(line.split())
    return rows


def test_readme_output_block_matches_a_fresh_run(tmp_path):
    command = first_command()
    argv = _tokens(command)
    assert argv[0] == "run_dcase2020.py", command
    # the quoted rows were printed with TensorFlow's two CPU threads (README says so); the thread count changes
    # the order of float32 sums, so it is pinned here to make the check independent of the machine's cores
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                       TF_NUM_INTRAOP_THREADS="2", TF_NUM_INTEROP_THREADS="2")
    done = subprocess.run([sys.executable, *argv, "--out", str(tmp_path)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    header, *quoted = quoted_rows()
    printed = {tuple(row[:3]): row for row in printed_table(done.stdout, header)}
    assert quoted, "the README block quotes no row"
    for row in quoted:
        assert tuple(row[:3]) in printed, f"README quotes a row the command does not print: {row}"
        assert row == printed[tuple(row[:3])], (
            f"README: {' '.join(row)}\nprinted: {' '.join(printed[tuple(row[:3])])}\n"
            "re-quote README's output of its first command")
    # the README results table's row of the same command quotes the same numbers
    names = re.findall(r"(?:dev|eval) p?AUC \((?:ours|paper)\)", " ".join(header))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table_rows = [line for line in readme.splitlines() if line.startswith("|") and f"`{command}`" in line]
    assert table_rows, "README's results table has no row for the first command"
    for line in table_rows:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        system = re.search(r"S = (\d+), (GMM|Gaussian)", cells[0])
        metric = re.fullmatch(r"(dev|eval) (AUC|pAUC)", cells[3])
        assert system and metric, f"cannot read the results-table row {line}"
        ours, paper = (value.strip() for value in cells[4].split("/"))
        values = dict(zip(names, printed[(system.group(1), system.group(2), "all")][-len(names):]))
        key = f"{metric.group(1)} {metric.group(2)}"
        assert (ours, paper) == (values[f"{key} (ours)"], values[f"{key} (paper)"]), line


def test_readme_gives_the_test_command_that_ci_runs():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    tests = [line for line in ci if "python -m pytest" in line]
    assert tests, ".ci/run runs no `python -m pytest`"
    command = tests[0]  # the README's test command (.ci/run says so)
    _, blocks = split_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    shown = [line.strip() for language, _, lines in blocks if language in SHELL_LANGUAGES for line in lines]
    assert command in shown, f"README.md does not show .ci/run's test command in a shell block: {command}"
