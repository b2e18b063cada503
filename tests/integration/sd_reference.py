"""Small randomly initialised Stable Diffusion pipelines, built by diffusers, for parity tests.

No weights can be downloaded here, so every parity test starts from a pipeline that diffusers
builds from a tiny config of a real family (the same block types, attention layouts, activations
and schedulers as the released checkpoints, fewer and narrower layers), saved as a diffusers
folder and rewritten as a single-file original-layout (ldm) checkpoint, the format users have.

Two halves:
- the test side (the test's own Python, no torch): `make_pipeline(family, out_dir)` runs this
  file under the reference Python and returns the paths it wrote; `reference_python()` and
  `clip_vocab_dir()` say where the reference and CLIP's vocabulary are;
- the reference side (run as `python sd_reference.py make FAMILY OUT`, or imported by other
  reference scripts under the reference Python): `build_pipeline`, `original_layout` (our own
  diffusers -> ldm key writer, derived from the architecture), `load_single_file` (diffusers'
  `from_single_file` reading our file back, fully offline) and `compare_state_dicts`.
  Commands (each takes the OUT folder `make` wrote): `roundtrip` (folder vs from_single_file),
  `encode OUT IDS CLIP_SKIP FILE` (transformers' CLIPTextModel on ids), `encode_sdxl OUT IDS
  IDS_2 FILE` (SDXL's two encoders as its encode_prompt combines them), `dump OUT FILE` (the
  folder's weights as diffusers loads them), `fp16 OUT` (adds *.fp16.safetensors variants);
  `vocab WHEEL DIR` writes CLIP's tokenizer files from the open_clip_torch wheel.

Tiny sizes obey the released families' rules, so a loader that infers heads from shapes (SD 1.x:
8 heads in the UNet; SD 2.x: 64 channels per head; CLIP text: 64 channels per head) works on them:
  text encoder: hidden 64, 1 head, intermediate 256, 77 positions, the full 49,408-id CLIP
    vocabulary; SD 1.x: 2 layers, quick_gelu; SD 2.x: 23 layers (the penultimate of OpenCLIP's
    24; the single file carries a 24th that SD 2.x does not use), gelu;
  UNet: 2 levels, 1 res block each, attention at the first level and in the middle;
    SD 1.x: channels (32, 64), 8 heads; SD 2.x: channels (64, 128), head dim 64, linear
    projections; cross-attention 64; latent sample 8x8 (64x64 images);
  VAE: channels (32, 64), 1 res block per level, 4 latent channels, scaling 0.18215.
SDXL (StableDiffusionXLPipeline, SDXL base's rules): text_encoder as SD 1.x's; text_encoder_2
  OpenCLIP bigG-like (CLIPTextModelWithProjection: 3 layers, gelu, projection 32, narrower than
  its hidden 64 so a transposed projection fails on shape; all 3 layers are used: the
  penultimate's hidden state and the last's pooled output); UNet channels (64, 128), attention
  only at the second level with 2 transformer blocks (and in the middle), 64 channels per head,
  linear projections, cross-attention 128 (both encoders' widths), "text_time" added embedding
  of the pooled 32 and six size ids of 8 channels each (6 * 8 + 32 = 80); VAE scaling 0.13025.
Schedulers as the released folders ship them: sd1/sd2 PNDM (epsilon), sd2-v DDIM
(v_prediction), sd-turbo Euler with trailing spacing (epsilon), sdxl Euler with leading
spacing (epsilon; clip_sample and set_alpha_to_one false, which DDIM picks up from it).

What `make` writes under OUT (and returns as JSON):
  folder/              the diffusers folder (save_pretrained, safetensors)
  model.safetensors    the same weights in the original single-file layout, float32
  original_config.yaml the ldm inference config of the tiny architecture (from_single_file's
                       original_config_file)
  hub/                 the local "openai/clip-vit-large-patch14" and "stabilityai/stable-
                       diffusion-2" (SDXL: "openai/clip-vit-large-patch14" and "laion/CLIP-ViT-
                       bigG-14-laion2B-39B-b160k") folders from_single_file looks up (configs and
                       tokenizers); run from_single_file with hub/ as the working directory
  tokenizer/           the tokenizer files (also in folder/tokenizer/), for single files
  tokenizer_2/         SDXL only: the second encoder's tokenizer (pad "!"), for single files
"""
import json
import os
import pathlib
import subprocess
import sys

FAMILIES = ("sd1", "sd2", "sd2-v", "sd-turbo", "sdxl")
REPO = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve()

# The OpenAI CLIP BPE file inside the open_clip_torch wheel, and how many of its merges CLIP
# uses: 49,408 ids = 256 bytes + 256 bytes with "</w>" + 48,894 merges + 2 special tokens.
CLIP_BPE_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGES = 49152 - 256 - 2


# ---------------------------------------------------------------------------------------------
# Test side: no torch here.

def reference_python():
    """The reference interpreter (diffusers on Debian's torch): IMAGEGEN_REFERENCE_PYTHON or
    <repo>/.venv-ref/bin/python (made by scripts/setup.sh test)."""
    return pathlib.Path(os.environ.get("IMAGEGEN_REFERENCE_PYTHON",
                                       REPO / ".venv-ref" / "bin" / "python"))


def clip_vocab_dir():
    """vocab.json + merges.txt of OpenAI's CLIP tokenizer, written by scripts/setup.sh test from
    the open_clip_torch wheel: IMAGEGEN_CLIP_VOCAB or <repo>/.tools/clip-vocab."""
    return pathlib.Path(os.environ.get("IMAGEGEN_CLIP_VOCAB", REPO / ".tools" / "clip-vocab"))


def missing_reference():
    """Why the reference cannot run here (a reason for pytest.skip), or None."""
    python = reference_python()
    if not os.access(python, os.X_OK):
        return f"no reference Python at {python} (scripts/setup.sh test makes .venv-ref)"
    vocab = clip_vocab_dir()
    if not (vocab / "vocab.json").is_file() or not (vocab / "merges.txt").is_file():
        return f"no CLIP vocabulary in {vocab} (scripts/setup.sh test fetches it)"
    return None


def run_reference(*args, timeout=900):
    """Runs this file's reference side under the reference Python; returns its JSON answer."""
    env = dict(os.environ, IMAGEGEN_CLIP_VOCAB=str(clip_vocab_dir()), OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONHASHSEED="0")
    proc = subprocess.run([str(reference_python()), str(HERE), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"reference {args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_pipeline(family, out_dir, inpainting=False, seed=0):
    """Builds the tiny `family` pipeline into out_dir (see the module doc) unless it is there
    already; returns {"folder", "single_file", "original_config", "hub", "tokenizer", "family"}
    as strings."""
    out_dir = pathlib.Path(out_dir)
    done = out_dir / "pipeline.json"
    if done.is_file():
        return json.loads(done.read_text())
    args = ["make", family, out_dir, "--seed", seed] + (["--inpainting"] if inpainting else [])
    return run_reference(*args)


def write_clip_vocab(wheel, out_dir):
    """vocab.json + merges.txt (transformers' CLIPTokenizer files) from open_clip's BPE file
    inside the wheel at `wheel`. Pure Python, so setup can run it before any venv exists."""
    import gzip
    import zipfile
    with zipfile.ZipFile(wheel) as zf:
        lines = gzip.decompress(zf.read(CLIP_BPE_MEMBER)).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:CLIP_MERGES + 1]]
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return len(vocab)


def bytes_to_unicode():
    """GPT-2/CLIP's reversible map of the 256 byte values to printable characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) +
                 list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


# ---------------------------------------------------------------------------------------------
# Reference side: runs under the reference Python (torch, diffusers, transformers).

TEXT_HIDDEN = 64
SD2_TEXT_LAYERS = 23  # OpenCLIP ViT-H has 24; SD 2.x conditions on the penultimate
SDXL_TEXT_2_LAYERS = 3
SDXL_PROJECTION = 32  # OpenCLIP bigG projects its 1280 channels to 1280; narrower here on purpose
SDXL_TIME_CHANNELS = 8  # per size id; SDXL's is 256
SDXL_SCALING = 0.13025


def family_traits(family):
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
    sd1 = family == "sd1"
    openai_clip = family in ("sd1", "sdxl")  # SDXL's first text encoder is SD 1.x's CLIP ViT-L
    return {
        "sd1": sd1,
        "sdxl": family == "sdxl",
        "text_layers": 2 if openai_clip else SD2_TEXT_LAYERS,
        "hidden_act": "quick_gelu" if openai_clip else "gelu",
        "pad_token": "<|endoftext|>" if openai_clip else "!",
        "unet_channels": (32, 64) if sd1 else (64, 128),
        "prediction_type": "v_prediction" if family == "sd2-v" else "epsilon",
    }


def clip_text_config(layers, hidden_act, projection_dim=TEXT_HIDDEN):
    from transformers import CLIPTextConfig
    return CLIPTextConfig(vocab_size=49408, hidden_size=TEXT_HIDDEN, intermediate_size=256,
                          num_hidden_layers=layers, num_attention_heads=1,
                          max_position_embeddings=77, hidden_act=hidden_act,
                          projection_dim=projection_dim, bos_token_id=49406, eos_token_id=49407,
                          pad_token_id=1)


def text_config(family):
    t = family_traits(family)
    return clip_text_config(t["text_layers"], t["hidden_act"])


def text_2_config():
    """SDXL's text_encoder_2: OpenCLIP bigG-like, with its projection."""
    return clip_text_config(SDXL_TEXT_2_LAYERS, "gelu", SDXL_PROJECTION)


def sdxl_unet_config(inpainting=False):
    """SDXL base's UNet rules: no attention at the first level, more transformer blocks deeper,
    64 channels per head (diffusers' attention_head_dim counts heads), the "text_time" added
    embedding of the pooled text and six size ids."""
    channels = family_traits("sdxl")["unet_channels"]
    return dict(sample_size=32, in_channels=9 if inpainting else 4, out_channels=4,
                block_out_channels=channels, layers_per_block=1,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                transformer_layers_per_block=(1, 2),
                attention_head_dim=tuple(c // 64 for c in channels), use_linear_projection=True,
                cross_attention_dim=2 * TEXT_HIDDEN, addition_embed_type="text_time",
                addition_time_embed_dim=SDXL_TIME_CHANNELS,
                projection_class_embeddings_input_dim=6 * SDXL_TIME_CHANNELS + SDXL_PROJECTION,
                norm_num_groups=32)


def unet_config(family, inpainting=False):
    t = family_traits(family)
    if t["sdxl"]:
        return sdxl_unet_config(inpainting)
    channels = t["unet_channels"]
    config = dict(sample_size=8, in_channels=9 if inpainting else 4, out_channels=4,
                  block_out_channels=channels, layers_per_block=1,
                  down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=TEXT_HIDDEN, norm_num_groups=32)
    if t["sd1"]:
        config["attention_head_dim"] = 8  # diffusers' name for SD 1.x's 8 heads
    else:
        config["attention_head_dim"] = tuple(c // 64 for c in channels)  # heads per level
        config["use_linear_projection"] = True
    return config


def vae_config(scaling_factor=0.18215):
    return dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64),
                layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=32, sample_size=64,
                scaling_factor=scaling_factor)


def make_scheduler(family):
    import diffusers
    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear")
    if family == "sd-turbo":
        return diffusers.EulerDiscreteScheduler(**common, prediction_type="epsilon",
                                                timestep_spacing="trailing", steps_offset=1)
    if family == "sdxl":  # SDXL base's scheduler_config.json, its DDIM/PNDM keys included
        return diffusers.EulerDiscreteScheduler.from_config(dict(
            common, prediction_type="epsilon", timestep_spacing="leading", steps_offset=1,
            interpolation_type="linear", use_karras_sigmas=False, clip_sample=False,
            set_alpha_to_one=False, skip_prk_steps=True, sample_max_value=1.0))
    if family == "sd2-v":
        return diffusers.DDIMScheduler(**common, prediction_type="v_prediction",
                                       clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return diffusers.PNDMScheduler(**common, skip_prk_steps=True, set_alpha_to_one=False,
                                   steps_offset=1, prediction_type="epsilon")


def make_tokenizer(family, pad_token=None):
    """CLIP's tokenizer with the family's pad token (or pad_token: SDXL's tokenizer_2 pads
    with "!")."""
    from transformers import CLIPTokenizer
    vocab = clip_vocab_dir()
    return CLIPTokenizer(str(vocab / "vocab.json"), str(vocab / "merges.txt"),
                         pad_token=pad_token or family_traits(family)["pad_token"],
                         model_max_length=77)


def randomise_norms_and_biases(modules):
    """Random (not default) norm scales and biases, so a loader that mixed up two norms would be
    seen."""
    import torch
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.add_(torch.randn_like(p) * 0.1)


def build_pipeline(family, inpainting=False, seed=0):
    """A randomly initialised StableDiffusionPipeline (StableDiffusionXLPipeline for sdxl) of
    the tiny `family` architecture; the weights depend only on the seed."""
    import diffusers
    import torch
    from transformers import CLIPTextModel
    if family_traits(family)["sdxl"]:
        return build_sdxl_pipeline(inpainting, seed)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config(family))
    unet = diffusers.UNet2DConditionModel(**unet_config(family, inpainting))
    vae = diffusers.AutoencoderKL(**vae_config())
    randomise_norms_and_biases((text_encoder, unet, vae))
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=make_tokenizer(family), unet=unet,
        scheduler=make_scheduler(family), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    return pipe.to(torch.float32)


def build_sdxl_pipeline(inpainting=False, seed=0):
    """The tiny StableDiffusionXLPipeline; force_zeros_for_empty_prompt as SDXL base ships it
    (no negative prompt: zero negative embeddings, not the empty prompt's)."""
    import diffusers
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config("sdxl"))
    text_encoder_2 = CLIPTextModelWithProjection(text_2_config())
    unet = diffusers.UNet2DConditionModel(**sdxl_unet_config(inpainting))
    vae = diffusers.AutoencoderKL(**vae_config(SDXL_SCALING))
    randomise_norms_and_biases((text_encoder, text_encoder_2, unet, vae))
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=make_tokenizer("sdxl"), tokenizer_2=make_tokenizer("sdxl", pad_token="!"),
        unet=unet, scheduler=make_scheduler("sdxl"), force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    return pipe.to(torch.float32)


# --- diffusers names -> original (ldm) names, from the architecture ----------------------------

RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
RESNET_VAE = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
              "conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_prefixes(config):
    """(diffusers prefix, ldm prefix, inner renames) for every UNet module."""
    layers = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    out = [("time_embedding.linear_1", "time_embed.0", None),
           ("time_embedding.linear_2", "time_embed.2", None),
           ("conv_in", "input_blocks.0.0", None), ("conv_norm_out", "out.0", None),
           ("conv_out", "out.2", None),
           ("mid_block.resnets.0", "middle_block.0", RESNET_UNET),
           ("mid_block.attentions.0", "middle_block.1", None),
           ("mid_block.resnets.1", "middle_block.2", RESNET_UNET)]
    if config.get("addition_embed_type") == "text_time":  # SDXL's added embedding
        out += [("add_embedding.linear_1", "label_emb.0.0", None),
                ("add_embedding.linear_2", "label_emb.0.2", None)]
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(layers):
            block = 1 + i * (layers + 1) + j
            out.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{block}.0", RESNET_UNET))
            if kind.startswith("CrossAttn"):
                out.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{block}.1", None))
        if i < levels - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv",
                        f"input_blocks.{1 + i * (layers + 1) + layers}.0.op", None))
    for i, kind in enumerate(config["up_block_types"]):
        attention = kind.startswith("CrossAttn")
        for j in range(layers + 1):
            block = i * (layers + 1) + j
            out.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{block}.0", RESNET_UNET))
            if attention:
                out.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{block}.1", None))
        if i < levels - 1:
            last = i * (layers + 1) + layers
            out.append((f"up_blocks.{i}.upsamplers.0.conv",
                        f"output_blocks.{last}.{2 if attention else 1}.conv", None))
    return out


def vae_prefixes(config):
    layers = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    out = []
    for side in ("encoder", "decoder"):
        out += [(f"{side}.conv_in", f"{side}.conv_in", None),
                (f"{side}.conv_norm_out", f"{side}.norm_out", None),
                (f"{side}.conv_out", f"{side}.conv_out", None),
                (f"{side}.mid_block.resnets.0", f"{side}.mid.block_1", RESNET_VAE),
                (f"{side}.mid_block.attentions.0", f"{side}.mid.attn_1", VAE_ATTENTION),
                (f"{side}.mid_block.resnets.1", f"{side}.mid.block_2", RESNET_VAE)]
    for i in range(levels):
        for j in range(layers):
            out.append((f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}",
                        RESNET_VAE))
        if i < levels - 1:
            out.append((f"encoder.down_blocks.{i}.downsamplers.0.conv",
                        f"encoder.down.{i}.downsample.conv", None))
        up = levels - 1 - i  # ldm numbers the decoder's levels from the bottom
        for j in range(layers + 1):
            out.append((f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{up}.block.{j}",
                        RESNET_VAE))
        if i < levels - 1:
            out.append((f"decoder.up_blocks.{i}.upsamplers.0.conv",
                        f"decoder.up.{up}.upsample.conv", None))
    out += [("quant_conv", "quant_conv", None), ("post_quant_conv", "post_quant_conv", None)]
    return out


def rename(state, prefixes, ldm_root):
    """Maps every key of `state` through `prefixes`; fails on a key no prefix covers."""
    out = {}
    for key, value in state.items():
        for diffusers_prefix, ldm_prefix, inner in prefixes:
            if not key.startswith(diffusers_prefix + "."):
                continue
            rest = key[len(diffusers_prefix) + 1:]
            if inner:
                head, _, leaf = rest.rpartition(".")
                if head not in inner:
                    raise KeyError(f"{key}: no ldm name for {head!r}")
                rest = inner[head] + "." + leaf
            out[f"{ldm_root}{ldm_prefix}.{rest}"] = value
            break
        else:
            raise KeyError(f"no ldm name for {key}")
    return out


def vae_to_ldm(state, config):
    out = rename(state, vae_prefixes(config), "first_stage_model.")
    for key, value in out.items():
        if ".mid.attn_1." in key and key.endswith("weight") and value.dim() == 2:
            out[key] = value[:, :, None, None]  # ldm's attention projections are 1x1 convs
    return out


OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                   "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}
OPEN_CLIP_LOGIT_SCALE = 4.6052  # log(100), what OpenCLIP's trained models carry


def without_position_ids(state):
    return {k: v for k, v in state.items() if not k.endswith("position_ids")}


def open_clip_tower(state, root, layers):
    """transformers' CLIP text names -> OpenCLIP's text tower under root: token_embedding,
    positional_embedding, ln_final and `layers` resblocks (q/k/v fused into in_proj)."""
    import torch
    out = {root + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
           root + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
           root + "ln_final.weight": state["text_model.final_layer_norm.weight"],
           root + "ln_final.bias": state["text_model.final_layer_norm.bias"]}
    for i in range(layers):
        p = f"text_model.encoder.layers.{i}."
        q = f"{root}transformer.resblocks.{i}."
        for leaf in ("weight", "bias"):
            out[q + f"attn.in_proj_{leaf}"] = torch.cat(
                [state[p + f"self_attn.{n}_proj.{leaf}"] for n in ("q", "k", "v")])
            for ours, theirs in OPEN_CLIP_LAYER.items():
                out[q + f"{theirs}.{leaf}"] = state[p + f"{ours}.{leaf}"]
    return out


def text_to_ldm(state, family, seed):
    """SD 1.x: transformers' names under cond_stage_model.transformer. SD 2.x: OpenCLIP's
    layout (fused q/k/v, resblocks, ln_final, text_projection) with a 24th layer SD 2.x skips."""
    import torch
    state = without_position_ids(state)
    if family_traits(family)["sd1"]:
        return {"cond_stage_model.transformer." + k: v for k, v in state.items()}
    root = "cond_stage_model.model."
    layers = family_traits(family)["text_layers"]
    out = open_clip_tower(state, root, layers)
    generator = torch.Generator().manual_seed(seed + 1)
    out[root + "text_projection"] = torch.randn(TEXT_HIDDEN, TEXT_HIDDEN, generator=generator)
    out[root + "logit_scale"] = torch.tensor(OPEN_CLIP_LOGIT_SCALE)
    # The unused last layer of OpenCLIP ViT-H, random: a loader must not run it.
    last = f"{root}transformer.resblocks.{layers}."
    for key in [k for k in out if k.startswith(f"{root}transformer.resblocks.0.")]:
        shape = out[key].shape
        out[last + key[len(f"{root}transformer.resblocks.0."):]] = torch.randn(
            shape, generator=generator)
    return out


def sdxl_text_to_ldm(text_encoder, text_encoder_2):
    """SDXL (sgm's conditioner): embedders.0 is CLIP ViT-L in transformers' names; embedders.1
    is OpenCLIP bigG's text tower, every layer used, with text_projection stored as OpenCLIP
    multiplies by it ([hidden, projection], transformers' Linear weight transposed)."""
    import torch
    out = {"conditioner.embedders.0.transformer." + k: v
           for k, v in without_position_ids(text_encoder.state_dict()).items()}
    state = without_position_ids(text_encoder_2.state_dict())
    root = "conditioner.embedders.1.model."
    out.update(open_clip_tower(state, root, text_encoder_2.config.num_hidden_layers))
    out[root + "text_projection"] = state["text_projection.weight"].t()
    out[root + "logit_scale"] = torch.tensor(OPEN_CLIP_LOGIT_SCALE)
    return out


def original_layout(pipe, family, seed=0):
    """The pipeline's weights under the original single-file (ldm) names, float32."""
    state = {}
    unet = pipe.unet.state_dict()
    state.update(rename(unet, unet_prefixes(pipe.unet.config), "model.diffusion_model."))
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if family_traits(family)["sdxl"]:
        state.update(sdxl_text_to_ldm(pipe.text_encoder, pipe.text_encoder_2))
    else:
        state.update(text_to_ldm(pipe.text_encoder.state_dict(), family, seed))
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def original_config_yaml(family, inpainting=False):
    """The ldm inference YAML of the tiny architecture (what from_single_file reads)."""
    t = family_traits(family)
    if t["sdxl"]:
        return sdxl_config_yaml(inpainting)
    unet = unet_config(family, inpainting)
    channels = unet["block_out_channels"]
    if t["sd1"]:
        heads = "num_heads: 8"
        cond = "ldm.modules.encoders.modules.FrozenCLIPEmbedder"
        linear = "False"
    else:
        heads = "num_head_channels: 64"
        cond = "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"
        linear = "True"
    parameterization = '    parameterization: "v"\n' if family == "sd2-v" else ""
    return f"""model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
{parameterization}    linear_start: 0.00085
    linear_end: 0.0120
    timesteps: 1000
    image_size: 8
    channels: 4
    conditioning_key: crossattn
    scale_factor: 0.18215
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 8
        in_channels: {unet["in_channels"]}
        out_channels: 4
        model_channels: {channels[0]}
        attention_resolutions: [ 1 ]
        num_res_blocks: 1
        channel_mult: [ 1, {channels[1] // channels[0]} ]
        {heads}
        use_linear_in_transformer: {linear}
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: {TEXT_HIDDEN}
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 64
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [ 1, 2 ]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
    cond_stage_config:
      target: {cond}
"""


def size_embedder_yaml(input_key):
    return f"""          - is_trainable: False
            input_key: {input_key}
            target: sgm.modules.encoders.modules.ConcatTimestepEmbedderND
            params:
              outdim: {SDXL_TIME_CHANNELS}
"""


def sdxl_config_yaml(inpainting=False):
    """sgm's inference YAML (configs/inference/sd_xl_base.yaml) of the tiny SDXL: the UNet under
    network_config, the five conditioner embedders (the two text towers, then original size,
    crop and target size), the VAE, scale_factor 0.13025."""
    unet = sdxl_unet_config(inpainting)
    channels = unet["block_out_channels"]
    depth = [n if kind.startswith("CrossAttn") else 0
             for n, kind in zip(unet["transformer_layers_per_block"], unet["down_block_types"])]
    sizes = "".join(size_embedder_yaml(key) for key in ("original_size_as_tuple",
                                                        "crop_coords_top_left",
                                                        "target_size_as_tuple"))
    return f"""model:
  target: sgm.models.diffusion.DiffusionEngine
  params:
    scale_factor: {SDXL_SCALING}
    disable_first_stage_autocast: True
    denoiser_config:
      target: sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser
      params:
        num_idx: 1000
        scaling_config:
          target: sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling
        discretization_config:
          target: sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization
    network_config:
      target: sgm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        adm_in_channels: {unet["projection_class_embeddings_input_dim"]}
        num_classes: sequential
        use_checkpoint: False
        in_channels: {unet["in_channels"]}
        out_channels: 4
        model_channels: {channels[0]}
        attention_resolutions: [ 2 ]
        num_res_blocks: 1
        channel_mult: [ 1, {channels[1] // channels[0]} ]
        num_head_channels: 64
        use_linear_in_transformer: True
        transformer_depth: [ {depth[0]}, {depth[1]} ]
        context_dim: {unet["cross_attention_dim"]}
        spatial_transformer_attn_type: softmax-xformers
    conditioner_config:
      target: sgm.modules.GeneralConditioner
      params:
        emb_models:
          - is_trainable: False
            input_key: txt
            target: sgm.modules.encoders.modules.FrozenCLIPEmbedder
            params:
              layer: hidden
              layer_idx: {family_traits("sdxl")["text_layers"] - 1}
          - is_trainable: False
            input_key: txt
            target: sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2
            params:
              arch: ViT-bigG-14
              version: laion2b_s39b_b160k
              freeze: True
              layer: penultimate
              always_return_pooled: True
              legacy: False
{sizes}    first_stage_config:
      target: sgm.models.autoencoder.AutoencoderKLInferenceWrapper
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          attn_type: vanilla-xformers
          double_z: true
          z_channels: 4
          resolution: 64
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [ 1, 2 ]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity
"""


SDXL_HUB = {"tokenizer": "openai/clip-vit-large-patch14",
            "tokenizer_2": "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"}


def write_hub_configs(pipe, family, hub):
    """The two hub folders from_single_file reads configs and tokenizers from, made local."""
    if family_traits(family)["sdxl"]:
        for tokenizer, encoder in (("tokenizer", "text_encoder"),
                                   ("tokenizer_2", "text_encoder_2")):
            folder = hub / SDXL_HUB[tokenizer]
            getattr(pipe, encoder).config.save_pretrained(folder)
            getattr(pipe, tokenizer).save_pretrained(folder)
    elif family_traits(family)["sd1"]:
        folder = hub / "openai" / "clip-vit-large-patch14"
        pipe.text_encoder.config.save_pretrained(folder)
        pipe.tokenizer.save_pretrained(folder)
    else:
        folder = hub / "stabilityai" / "stable-diffusion-2"
        pipe.text_encoder.config.save_pretrained(folder / "text_encoder")
        pipe.tokenizer.save_pretrained(folder / "tokenizer")


def save_all(pipe, family, out_dir, inpainting=False, seed=0):
    from safetensors.torch import save_file
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out_dir / "folder", safe_serialization=True)
    pipe.tokenizer.save_pretrained(out_dir / "tokenizer")
    single = out_dir / "model.safetensors"
    save_file(original_layout(pipe, family, seed), str(single), metadata={"format": "pt"})
    yaml = out_dir / "original_config.yaml"
    yaml.write_text(original_config_yaml(family, inpainting))
    write_hub_configs(pipe, family, out_dir / "hub")
    paths = {"family": family, "folder": str(out_dir / "folder"), "single_file": str(single),
             "original_config": str(yaml), "hub": str(out_dir / "hub"),
             "tokenizer": str(out_dir / "tokenizer"), "inpainting": inpainting}
    if family_traits(family)["sdxl"]:
        pipe.tokenizer_2.save_pretrained(out_dir / "tokenizer_2")
        paths["tokenizer_2"] = str(out_dir / "tokenizer_2")
    (out_dir / "pipeline.json").write_text(json.dumps(paths))
    return paths


LORA_UNET = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj",
             "ff.net.2")
LORA_TEXT = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


def lora_layers(model, leaves):
    """(name, weight shape) of the model's linear and conv layers whose names end in a leaf."""
    import torch
    for name, module in model.named_modules():
        if name.endswith(tuple("." + leaf for leaf in leaves)) and \
                isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            yield name, module.weight.shape


def random_lora(towers, seed, kohya, std, rank=4):
    """Random rank-`rank` LoRA factors (normal, times `std`) for `towers`, a list of (module,
    leaves, kohya prefix, diffusers prefix): kohya-ss names (lora_down/lora_up, 1x1 kernels for
    convolutions, alpha 2: scale alpha / rank = 1/2) or diffusers PEFT names (lora_A/lora_B),
    drawn in the same order from a generator seeded with `seed`."""
    import torch
    g = torch.Generator().manual_seed(seed)
    out = {}
    for model, leaves, kohya_prefix, diffusers_prefix in towers:
        for name, shape in lora_layers(model, leaves):
            kernel = tuple(shape[2:])
            down = torch.randn((rank, shape[1]) + kernel, generator=g) * std
            up = torch.randn((shape[0], rank) + (1,) * len(kernel), generator=g) * std
            if kohya:
                key = kohya_prefix + name.replace(".", "_")
                out[key + ".lora_down.weight"] = down
                out[key + ".lora_up.weight"] = up
                out[key + ".alpha"] = torch.tensor(2.0)
            else:
                out[diffusers_prefix + name + ".lora_A.weight"] = down
                out[diffusers_prefix + name + ".lora_B.weight"] = up
    return out


def networks(paths):
    """The pipeline's weighted components, in diffusers' names."""
    if family_traits(paths["family"])["sdxl"]:
        return ("text_encoder", "text_encoder_2", "unet", "vae")
    return ("text_encoder", "unet", "vae")


def pipeline_class(paths):
    import diffusers
    if family_traits(paths["family"])["sdxl"]:
        return diffusers.StableDiffusionXLPipeline
    return diffusers.StableDiffusionPipeline


def scheduler_for(config, name):
    """diffusers' scheduler that imagegen's sampler `name` steps as, over a folder's scheduler
    config (the parity tests' reference pipelines swap it in)."""
    import diffusers
    if name == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(config)
    if name in ("euler_a", "turbo"):
        extra = {"timestep_spacing": "trailing"} if name == "turbo" else {}
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config, **extra)
    if name.startswith("dpmpp_2m"):
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            lower_order_final=True, final_sigmas_type="zero",
            use_karras_sigmas=name == "dpmpp_2m_karras")
    return diffusers.DDIMScheduler.from_config(config)


def load_folder(paths):
    return pipeline_class(paths).from_pretrained(paths["folder"], local_files_only=True)


def load_single_file(paths):
    """diffusers' own reader of single-file checkpoints on our file, offline: it looks its text
    encoder config and tokenizer up by hub name, which resolve to hub/ as the working dir.
    SDXL: named as such (diffusers 0.27.2 would infer "SDXL-Refiner" from any context width but
    2048), with the parts it cannot size for the tiny widths read as sdxl_single_file_components
    says."""
    import diffusers
    cwd = os.getcwd()
    os.chdir(paths["hub"])
    try:
        if family_traits(paths["family"])["sdxl"]:
            return diffusers.StableDiffusionXLPipeline.from_single_file(
                paths["single_file"], original_config_file=paths["original_config"],
                local_files_only=True, image_size=64, model_type="SDXL",
                **sdxl_single_file_components(paths))
        extra = {"num_in_channels": 9} if paths.get("inpainting") else {}
        return diffusers.StableDiffusionPipeline.from_single_file(
            paths["single_file"], original_config_file=paths["original_config"],
            local_files_only=True, image_size=64, load_safety_checker=False, **extra)
    finally:
        os.chdir(cwd)


def sdxl_single_file_components(paths):
    """The UNet, both text encoders and both tokenizers of our SDXL file, read by the very
    functions diffusers 0.27.2's from_single_file calls, told the tiny widths where it assumes
    the released ones: its UNet config has the "text_time" embedding (256 channels per size id)
    only for a context of 2048 or 1280, and reads label_emb as a class embedding otherwise; it
    forces text_encoder_2's projection_dim to 1280 over the hub config (a shape error on our 32).
    It builds the two encoders and tokenizers in one go, so all four are passed; it still builds
    the VAE and the scheduler. Runs with hub/ as the working directory."""
    import yaml
    from diffusers import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from safetensors.torch import load_file
    from transformers import CLIPTokenizer
    original = yaml.safe_load(pathlib.Path(paths["original_config"]).read_text())
    checkpoint = load_file(paths["single_file"])
    config = sfu.create_unet_diffusers_config(original, image_size=64)
    time_embedder = original["model"]["params"]["conditioner_config"]["params"]["emb_models"][2]
    config.update(class_embed_type=None, addition_embed_type="text_time",
                  addition_time_embed_dim=time_embedder["params"]["outdim"])
    unet = UNet2DConditionModel(**config)
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(dict(checkpoint), config))
    root_2 = "conditioner.embedders.1.model."
    text_encoder_2 = sfu.create_text_encoder_from_open_clip_checkpoint(
        SDXL_HUB["tokenizer_2"], checkpoint, prefix=root_2, has_projection=True,
        local_files_only=True, projection_dim=checkpoint[root_2 + "text_projection"].shape[1])
    return dict(
        unet=unet, text_encoder_2=text_encoder_2,
        text_encoder=sfu.create_text_encoder_from_ldm_clip_checkpoint(
            SDXL_HUB["tokenizer"], checkpoint, local_files_only=True),
        tokenizer=CLIPTokenizer.from_pretrained(SDXL_HUB["tokenizer"], local_files_only=True),
        tokenizer_2=CLIPTokenizer.from_pretrained(SDXL_HUB["tokenizer_2"], pad_token="!",
                                                  local_files_only=True))


def compare_state_dicts(a, b, names=("text_encoder", "unet", "vae")):
    """{component: {"keys": n, "max_abs_diff": d, "missing": [...], "extra": [...]}}."""
    report = {}
    for name in names:
        sa = {k: v for k, v in getattr(a, name).state_dict().items()
              if not k.endswith("position_ids")}
        sb = {k: v for k, v in getattr(b, name).state_dict().items()
              if not k.endswith("position_ids")}
        common = sorted(set(sa) & set(sb))
        diff = max(float((sa[k].float() - sb[k].float()).abs().max()) if sa[k].numel() else 0.0
                   for k in common)
        report[name] = {"keys": len(common), "max_abs_diff": diff,
                        "missing": sorted(set(sa) - set(sb)), "extra": sorted(set(sb) - set(sa))}
    return report


def encode_text(paths, ids, clip_skip, out_file, dtype="f32"):
    """transformers' CLIPTextModel of the folder on `ids` ([[int]]), clip_skip counted as
    A1111 does (1 = last layer; k = diffusers' clip_skip k-1: hidden_states[-k] then the final
    layer norm), written as "hidden" (float32) to out_file; dtype "bf16" runs the model in
    bfloat16, as diffusers' torch_dtype=torch.bfloat16 loads it."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextModel
    model = CLIPTextModel.from_pretrained(pathlib.Path(paths["folder"]) / "text_encoder",
                                          local_files_only=True).eval()
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
        if clip_skip == 1:
            hidden = out.last_hidden_state
        else:
            hidden = model.text_model.final_layer_norm(out.hidden_states[-clip_skip])
    save_file({"hidden": hidden.float().contiguous()}, out_file)
    return {"shape": list(hidden.shape)}


def encode_sdxl(paths, ids, ids_2, out_file):
    """What SDXL's encode_prompt computes from token ids (clip_skip None): "hidden" = both
    encoders' penultimate hidden states (no final layer norm) side by side, text_encoder's
    first; "pooled" = text_encoder_2's projected output at the first end-of-text token (its
    last layer, final layer norm, text_projection). float32, to out_file."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    folder = pathlib.Path(paths["folder"])
    text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder",
                                                 local_files_only=True).eval()
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2",
                                                                 local_files_only=True).eval()
    with torch.no_grad():
        first = text_encoder(torch.tensor(ids, dtype=torch.long), output_hidden_states=True)
        second = text_encoder_2(torch.tensor(ids_2, dtype=torch.long), output_hidden_states=True)
        hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    save_file({"hidden": hidden.float().contiguous(),
               "pooled": second.text_embeds.float().contiguous()}, out_file)
    return {"shape": list(hidden.shape), "pooled_shape": list(second.text_embeds.shape)}


def dump_state(paths, out_file):
    """The folder's weights as diffusers loads them, "<component>.<name>", float32."""
    from safetensors.torch import save_file
    pipe = load_folder(paths)
    state = {}
    for name in networks(paths):
        for key, value in getattr(pipe, name).state_dict().items():
            if not key.endswith("position_ids"):
                state[f"{name}.{key}"] = value.float().contiguous()
    save_file(state, out_file)
    return {"tensors": len(state)}


def save_fp16_variant(paths):
    """Adds *.fp16.safetensors files to the folder (the weights rounded to float16)."""
    import torch
    pipe = load_folder(paths).to(torch.float16)
    for name in networks(paths):
        getattr(pipe, name).save_pretrained(pathlib.Path(paths["folder"]) / name,
                                            safe_serialization=True, variant="fp16")
    return {"variant": "fp16"}


def main(argv):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="build, save and rewrite a tiny pipeline")
    make.add_argument("family", choices=FAMILIES)
    make.add_argument("out")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--inpainting", action="store_true")
    trip = sub.add_parser("roundtrip", help="folder vs from_single_file of our file")
    trip.add_argument("out")
    vocab = sub.add_parser("vocab", help="CLIP vocab.json/merges.txt from an open_clip wheel")
    vocab.add_argument("wheel")
    vocab.add_argument("out")
    encode = sub.add_parser("encode", help="the folder's text encoder on ids")
    encode.add_argument("out")
    encode.add_argument("ids", help="JSON [[id, ...], ...]")
    encode.add_argument("clip_skip", type=int)
    encode.add_argument("result")
    encode.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    encode_xl = sub.add_parser("encode_sdxl", help="an SDXL folder's two text encoders on ids")
    encode_xl.add_argument("out")
    encode_xl.add_argument("ids", help="JSON [[id, ...], ...] for text_encoder")
    encode_xl.add_argument("ids_2", help="JSON [[id, ...], ...] for text_encoder_2")
    encode_xl.add_argument("result")
    dump = sub.add_parser("dump", help="the folder's weights as diffusers loads them")
    dump.add_argument("out")
    dump.add_argument("result")
    fp16 = sub.add_parser("fp16", help="add fp16 variant files to the folder")
    fp16.add_argument("out")
    args = parser.parse_args(argv)
    if args.command in ("roundtrip", "encode", "encode_sdxl", "dump", "fp16"):
        paths = json.loads((pathlib.Path(args.out) / "pipeline.json").read_text())
    if args.command == "vocab":
        print(json.dumps({"ids": write_clip_vocab(args.wheel, args.out)}))
    elif args.command == "make":
        pipe = build_pipeline(args.family, args.inpainting, args.seed)
        print(json.dumps(save_all(pipe, args.family, args.out, args.inpainting, args.seed)))
    elif args.command == "roundtrip":
        print(json.dumps(compare_state_dicts(load_folder(paths), load_single_file(paths),
                                             networks(paths))))
    elif args.command == "encode":
        print(json.dumps(encode_text(paths, json.loads(args.ids), args.clip_skip, args.result,
                                     args.dtype)))
    elif args.command == "encode_sdxl":
        print(json.dumps(encode_sdxl(paths, json.loads(args.ids), json.loads(args.ids_2),
                                     args.result)))
    elif args.command == "dump":
        print(json.dumps(dump_state(paths, args.result)))
    else:
        print(json.dumps(save_fp16_variant(paths)))


if __name__ == "__main__":
    main(sys.argv[1:])
