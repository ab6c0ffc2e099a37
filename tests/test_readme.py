"""Issue 12: every command of the README's "On the real competition data" section runs as written on the sample
corpus. The fenced bash commands are taken from README.md and run in order in one folder, with only these
replacements: the Kaggle data folder -> a generated sample corpus, each `configs/<name>.yaml` -> a small config of
the same name (a tiny local model of the matching family, 3 folds, few essays, short windows, one epoch), the
sweep space -> a small space and `--n-trials 20` -> 1; on a machine without CUDA, `--multi_gpu --num_processes 4`
-> `--num_processes 1`."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import small_config

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## On the real competition data"
DATA = "data/feedback-prize-2021"


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The section's fenced ``bash`` blocks, one command per entry (continuation lines joined)."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _arch(config_name: str) -> str:
    for family in ("bigbird", "deberta"):
        if config_name.startswith(family):
            return "deberta-v2" if family == "deberta" else family
    return "longformer"


def test_readme_section_is_parsed():
    commands = readme_commands()
    assert any(c.startswith("accelerate launch") for c in commands)
    for cmd in ("feedback_ner.tune", "feedback_ner.ensemble", "feedback_ner.predict", "feedback_ner.score"):
        assert any(cmd in c for c in commands), cmd
    assert not any(c.endswith("\\") for c in commands)


@pytest.mark.slow
def test_every_readme_command_runs_on_the_sample_corpus(tmp_path, corpus_dir, tiny_models):
    work = tmp_path / "work"
    (work / "configs").mkdir(parents=True)
    (work / "sweeps").mkdir()
    commands = readme_commands()
    for name in sorted({m for c in commands for m in re.findall(r"configs/([\w.-]+)\.yaml", c)}):
        cfg = small_config(corpus_dir, tiny_models(_arch(name)), Path("runs") / name, num_folds=3, max_essays=24,
                           max_length=64, stride=16, folds=[])
        cfg["output_dir"] = f"runs/{name}"
        (work / "configs" / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    space = {"learning_rate": {"type": "float", "low": 1.0e-3, "high": 5.0e-3, "log": True},
             "num_train_epochs": 1, "max_essays": 24, "disable_tqdm": True}
    for name in {m for c in commands for m in re.findall(r"sweeps/([\w.-]+)\.yaml", c)}:
        (work / "sweeps" / f"{name}.yaml").write_text(yaml.safe_dump(space))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    for command in commands:
        run = command.replace(DATA, str(corpus_dir)).replace("--n-trials 20", "--n-trials 1")
        if not torch.cuda.is_available():
            run = run.replace("--multi_gpu --num_processes 4", "--num_processes 1")
        assert shlex.split(run)  # a well-formed shell line
        done = subprocess.run(["bash", "-c", run], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n(ran: {run})\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        assert "Traceback" not in done.stderr, done.stderr[-4000:]
    # what the commands were for
    assert (work / "runs" / "longformer-base" / "postprocess.json").is_file()
    assert (work / "ensemble.json").is_file() and (work / "oof_submission.csv").is_file()
    submission = pd.read_csv(work / "submission.csv")
    assert list(submission.columns) == ["id", "class", "predictionstring"]
