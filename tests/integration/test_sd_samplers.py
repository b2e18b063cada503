"""The samplers (imagegen-sd-sample, src/model/sd/sampling) against diffusers' schedulers, step by
step: both run the same fake denoiser (output = a * scale_model_input(x) + b * sin(t)) from the
same torch.randn latents (a CPU generator seeded as diffusers' pipelines seed theirs), and every
step's latents and predicted x0 must agree to 1e-5 relative (float32 arithmetic on both sides).

Covered: euler (EulerDiscrete), euler_a (EulerAncestralDiscrete: its noise from the generator),
dpmpp_2m and dpmpp_2m_karras (DPMSolverMultistep, dpmsolver++ order 2 midpoint, lower_order_final,
final_sigmas_type zero), ddim (DDIM, eta 0), turbo (EulerAncestral with trailing spacing), for
epsilon and v_prediction, SD's scheduler configurations (leading + steps_offset 1, trailing,
linspace), 1 to 50 steps, and image-to-image starts from strength (diffusers' get_timesteps,
set_begin_index and add_noise).

diffusers needs torch: the reference runs in IMAGEGEN_REFERENCE_PYTHON (default the repository's
.venv-ref/bin/python); the test is skipped, saying so, when that Python cannot import both.
"""
import itertools
import json
import os
import pathlib
import subprocess

import pytest

from conftest import binary_path

REPO = pathlib.Path(__file__).resolve().parents[2]
TOOL = pathlib.Path(os.environ.get("IMAGEGEN_SD_SAMPLE",
                                   pathlib.Path(binary_path()).parent / "imagegen-sd-sample"))
PYTHON = os.environ.get("IMAGEGEN_REFERENCE_PYTHON", str(REPO / ".venv-ref" / "bin" / "python"))


def _has_diffusers():
    try:
        probe = subprocess.run([PYTHON, "-c", "import torch, diffusers"], capture_output=True)
    except OSError:
        return False
    return probe.returncode == 0


pytestmark = [
    pytest.mark.skipif(not os.access(TOOL, os.X_OK),
                       reason=f"{TOOL} is not built: it belongs to the engine "
                              "(configure with -DIMAGEGEN_ENGINE=ON)"),
    pytest.mark.skipif(not _has_diffusers(),
                       reason=f"{PYTHON} cannot import torch and diffusers; set "
                              "IMAGEGEN_REFERENCE_PYTHON"),
]

REFERENCE = r"""
import json, math, sys
import torch
import diffusers

def scheduler(case):
    config = dict(case["scheduler"])
    kind = case["sampler"]
    if kind == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(config)
    if kind in ("euler_a", "turbo"):
        if kind == "turbo":
            config["timestep_spacing"] = "trailing"
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    if kind in ("dpmpp_2m", "dpmpp_2m_karras"):
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            lower_order_final=True, final_sigmas_type="zero",
            use_karras_sigmas=kind == "dpmpp_2m_karras")
    return diffusers.DDIMScheduler.from_config(config)

def run(case):
    s = scheduler(case)
    steps, strength = case["steps"], case.get("strength", 1.0)
    s.set_timesteps(steps)
    shape = case["shape"]
    generator = torch.Generator().manual_seed(case["seed"])
    timesteps = s.timesteps
    if strength < 1.0:
        # StableDiffusionImg2ImgPipeline.get_timesteps and prepare_latents
        init = min(int(steps * strength), steps)
        start = max(steps - init, 0)
        timesteps = s.timesteps[start * s.order:]
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(start * s.order)
        x0 = torch.randn(shape, generator=torch.Generator().manual_seed(case["init_seed"]))
        noise = torch.randn(shape, generator=generator)
        x = s.add_noise(x0, noise, timesteps[:1].repeat(shape[0]))
    else:
        x = torch.randn(shape, generator=generator) * s.init_noise_sigma
    extra = {"generator": generator}
    if isinstance(s, diffusers.DDIMScheduler):
        extra["eta"] = 0.0
    out = {"timesteps": [], "trajectory": [], "x0": []}
    for t in timesteps:
        model_input = s.scale_model_input(x, t)
        output = case["a"] * model_input + case["b"] * math.sin(float(t))
        step = s.step(output, t, x, **extra)
        x = step.prev_sample
        out["timesteps"].append(float(t))
        out["trajectory"].append(x.flatten().tolist())
        x0 = getattr(step, "pred_original_sample", None)
        out["x0"].append(None if x0 is None else x0.flatten().tolist())
    return out

print(json.dumps({"version": diffusers.__version__,
                  "rows": [run(c) for c in json.loads(sys.stdin.read())]}))
"""

SD1 = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
           beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
           set_alpha_to_one=False, clip_sample=False, prediction_type="epsilon")
CONFIGS = {
    "sd1": SD1,
    "sd2v": dict(SD1, prediction_type="v_prediction"),
    "turbo": dict(SD1, steps_offset=0, timestep_spacing="trailing"),
    "linspace": dict(SD1, steps_offset=0, timestep_spacing="linspace"),
}
SAMPLERS = ["euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "turbo"]


def cases():
    out = []
    for (config_name, config), sampler, steps in itertools.product(
            CONFIGS.items(), SAMPLERS, [1, 2, 4, 10, 25, 50]):
        if sampler == "turbo" and steps > 4:
            continue
        for strength in ([1.0, 0.8, 0.35] if steps >= 4 else [1.0]):
            out.append(dict(name=f"{config_name}/{sampler}/{steps}/{strength}", scheduler=config,
                            sampler=sampler, steps=steps, strength=strength,
                            shape=[1, 4, 6, 5], seed=len(out) + 11, init_seed=len(out) + 1000,
                            a=0.1, b=1.0))
    return out


def max_rel(got, want):
    """The largest |got - want| over the scale of want (its largest magnitude, at least 1)."""
    scale = max(1.0, max(abs(w) for w in want))
    return max(abs(g - w) for g, w in zip(got, want)) / scale


def _run_both(all_cases):
    reference = subprocess.run([PYTHON, "-c", REFERENCE], input=json.dumps(all_cases),
                               capture_output=True, text=True, timeout=900)
    assert reference.returncode == 0, reference.stderr[-3000:]
    reference = json.loads(reference.stdout)
    tool = subprocess.run([str(TOOL)], input="".join(json.dumps(c) + "\n" for c in all_cases),
                          capture_output=True, text=True, timeout=300)
    assert tool.returncode == 0, tool.stderr[-3000:]
    answers = [json.loads(line) for line in tool.stdout.splitlines()]
    assert len(answers) == len(all_cases)
    return answers, reference


def test_trajectories_equal_diffusers():
    all_cases = cases()
    answers, reference = _run_both(all_cases)
    failures, worst = [], 0.0
    for case, got, want in zip(all_cases, answers, reference["rows"]):
        if "error" in got:
            failures.append(f"{case['name']}: {got['error']}")
            continue
        if got["timesteps"] != pytest.approx(want["timesteps"], abs=1e-3):
            failures.append(f"{case['name']}: timesteps {got['timesteps']} vs {want['timesteps']}")
            continue
        for step, (g, w) in enumerate(zip(got["trajectory"], want["trajectory"])):
            err = max_rel(g, w)
            worst = max(worst, err)
            if err > 1e-5:
                failures.append(f"{case['name']}: step {step} latents differ by {err:.2e}")
                break
        for step, (g, w) in enumerate(zip(got["x0"], want["x0"])):
            if w is not None and max_rel(g, w) > 1e-5:
                failures.append(f"{case['name']}: step {step} x0 differs by {max_rel(g, w):.2e}")
                break
        if len(got["trajectory"]) != len(want["trajectory"]):
            failures.append(f"{case['name']}: {len(got['trajectory'])} steps vs "
                            f"{len(want['trajectory'])}")
    assert not failures, f"{len(failures)} of {len(all_cases)} differ " \
        f"(diffusers {reference['version']}):\n" + "\n".join(failures[:12])
    print(f"\n{len(all_cases)} trajectories equal diffusers {reference['version']}; "
          f"largest relative difference {worst:.2e}")


def test_ancestral_noise_depends_on_the_seed():
    base = dict(sampler="euler_a", steps=4, scheduler=SD1, shape=[1, 4, 4, 4], a=0.1, b=1.0)
    lines = [dict(base, seed=1), dict(base, seed=1), dict(base, seed=2)]
    out = subprocess.run([str(TOOL)], input="".join(json.dumps(c) + "\n" for c in lines),
                         capture_output=True, text=True, timeout=60)
    first, again, other = [json.loads(line)["trajectory"][-1] for line in out.stdout.splitlines()]
    assert first == again
    assert first != other


def test_bad_input_is_refused_with_a_code():
    lines = [dict(sampler="heun"), dict(sampler="euler", steps=0),
             dict(sampler="euler", steps=10, strength=0),
             dict(sampler="ddim", scheduler=dict(SD1, beta_schedule="squaredcos_cap_v2")),
             dict(sampler="euler", scheduler=dict(SD1, prediction_type="sample"))]
    out = subprocess.run([str(TOOL)], input="".join(json.dumps(c) + "\n" for c in lines) + "x\n",
                         capture_output=True, text=True, timeout=60)
    errors = [json.loads(line)["error"] for line in out.stdout.splitlines()]
    assert [e["code"] for e in errors] == ["invalid_request"] * 6
    assert "heun" in errors[0]["message"]
    assert "1..1000" in errors[1]["message"]
    assert "strength" in errors[2]["message"]
    assert "squaredcos_cap_v2" in errors[3]["message"]
    assert "sample" in errors[4]["message"]
