"""The samplers' timestep and sigma tables (imagegen-sd-schedule, src/model/sd/schedule) against
diffusers' schedulers: EulerDiscrete, EulerAncestralDiscrete, DPMSolverMultistep (with and without
Karras sigmas) and DDIM, for SD 1.x/2.x configurations (scaled_linear 0.00085..0.012 over 1000
training steps, also linear betas), every timestep spacing, steps_offset 0 and 1, 1 to 1000 steps.

diffusers needs torch, which the test venv does not carry: the reference runs in a Python that
has both: IMAGEGEN_REFERENCE_PYTHON, by default .venv-ref/bin/python, which
`scripts/setup.sh test` makes (diffusers on Debian's python3-torch).
diffusers keeps alphas_cumprod in float32, so sigmas agree to float32 precision (relative 1e-6).
"""
import itertools
import json
import os
import pathlib
import subprocess

import pytest

from conftest import binary_path

TOOL = pathlib.Path(os.environ.get("IMAGEGEN_SD_SCHEDULE",
                                   pathlib.Path(binary_path()).parent / "imagegen-sd-schedule"))
PYTHON = os.environ.get("IMAGEGEN_REFERENCE_PYTHON",
                        str(pathlib.Path(__file__).resolve().parents[2] / ".venv-ref" / "bin" / "python"))


def _has_diffusers():
    probe = subprocess.run([PYTHON, "-c", "import torch, diffusers"], capture_output=True)
    return probe.returncode == 0


pytestmark = [
    pytest.mark.skipif(not os.access(TOOL, os.X_OK),
                       reason=f"{TOOL} is not built: it belongs to the engine "
                              "(configure with -DIMAGEGEN_ENGINE=ON)"),
    pytest.mark.skipif(not _has_diffusers(),
                       reason=f"{PYTHON} cannot import torch and diffusers; set "
                              "IMAGEGEN_REFERENCE_PYTHON (see this file's docstring)"),
]

REFERENCE = r"""
import json, sys
import diffusers
out = []
for case in json.loads(sys.stdin.read()):
    common = dict(num_train_timesteps=case["train_steps"], beta_start=case["beta_start"],
                  beta_end=case["beta_end"], beta_schedule=case["beta_schedule"],
                  timestep_spacing=case["spacing"], steps_offset=case["steps_offset"])
    kind = case["scheduler"]
    if kind == "ddim":
        s = diffusers.DDIMScheduler(set_alpha_to_one=case["set_alpha_to_one"], **common)
    elif kind == "euler":
        s = diffusers.EulerDiscreteScheduler(use_karras_sigmas=case["karras"], **common)
    elif kind == "euler_ancestral":
        s = diffusers.EulerAncestralDiscreteScheduler(**common)
    else:
        s = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=case["karras"], **common)
    s.set_timesteps(case["steps"])
    row = {"timesteps": s.timesteps.tolist()}
    if kind == "ddim":
        row["alphas_cumprod"] = s.alphas_cumprod.tolist()
        row["final_alpha_cumprod"] = float(s.final_alpha_cumprod)
    else:
        row["sigmas"] = s.sigmas.tolist()
        if kind != "dpmpp_2m":
            row["init_noise_sigma"] = float(s.init_noise_sigma)
    out.append(row)
print(json.dumps({"version": diffusers.__version__, "rows": out}))
"""

STEPS = [1, 2, 3, 4, 7, 10, 20, 25, 30, 50, 100, 333, 999, 1000]


def cases():
    out = []
    configs = [dict(train_steps=1000, beta_start=0.00085, beta_end=0.012,
                    beta_schedule="scaled_linear"),
               dict(train_steps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear")]
    spacings = [("leading", 1), ("leading", 0), ("trailing", 0), ("linspace", 0)]
    schedulers = [("euler", False), ("euler", True), ("euler_ancestral", False),
                  ("dpmpp_2m", False), ("dpmpp_2m", True), ("ddim", False)]
    for config, (spacing, offset), (scheduler, karras), steps in itertools.product(
            configs, spacings, schedulers, STEPS):
        out.append(dict(config, spacing=spacing, steps_offset=offset, scheduler=scheduler,
                        karras=karras, steps=steps, set_alpha_to_one=steps % 2 == 0))
    return out


def ours(case):
    sampler = {"euler_ancestral": "euler"}.get(case["scheduler"], case["scheduler"])
    return dict(case, sampler=sampler)


def close(got, want, rel, abs_tol=0.0):
    return len(got) == len(want) and all(
        abs(g - w) <= abs_tol + rel * abs(w) for g, w in zip(got, want))


def test_tables_equal_diffusers():
    all_cases = cases()
    reference = subprocess.run([PYTHON, "-c", REFERENCE], input=json.dumps(all_cases),
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]
    reference = json.loads(reference.stdout)
    tool = subprocess.run([str(TOOL)], input="".join(json.dumps(ours(c)) + "\n" for c in all_cases),
                          capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stderr
    answers = [json.loads(line) for line in tool.stdout.splitlines()]
    assert len(answers) == len(all_cases)
    failures = []
    for case, got, want in zip(all_cases, answers, reference["rows"]):
        fractional = case["scheduler"] != "ddim" and (case["karras"] or case["spacing"] == "linspace")
        checks = [("timesteps", close(got["timesteps"], want["timesteps"], 0,
                                      2e-3 if fractional else 0))]
        if "sigmas" in want:
            checks.append(("sigmas", close(got["sigmas"], want["sigmas"], 1e-6, 1e-7)))
        if "init_noise_sigma" in want:
            checks.append(("init_noise_sigma", close([got["init_noise_sigma"]],
                                                     [want["init_noise_sigma"]], 1e-6)))
        if "alphas_cumprod" in want:
            checks.append(("alphas_cumprod", close(got["alphas_cumprod"], want["alphas_cumprod"],
                                                   1e-6)))
            checks.append(("final_alpha_cumprod", close([got["final_alpha_cumprod"]],
                                                        [want["final_alpha_cumprod"]], 1e-6)))
        for name, ok in checks:
            if not ok:
                failures.append(f"{case}: {name}: ours {str(got.get(name))[:200]} "
                                f"diffusers {str(want[name])[:200]}")
    assert not failures, f"{len(failures)} of {len(all_cases)} differ " \
        f"(diffusers {reference['version']}):\n" + "\n".join(failures[:8])
    print(f"\n{len(all_cases)} tables equal diffusers {reference['version']}")


def test_steps_out_of_range_are_refused():
    out = subprocess.run([str(TOOL)], input='{"steps": 0}\n{"steps": 1001}\n{"spacing": "x"}\n',
                         capture_output=True, text=True, timeout=30)
    errors = [json.loads(line)["error"] for line in out.stdout.splitlines()]
    assert [e["code"] for e in errors] == ["invalid_request"] * 3
    assert "1..1000" in errors[0]["message"]
