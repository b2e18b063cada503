"""GGUF files for the GGUF tests, written with llama.cpp's `gguf` package (PyPI), the way
stable-diffusion.cpp's `sd -M convert --type q8_0` quantises: a tensor becomes Q8_0 when its
innermost dimension is a whole number of 32-value blocks and it is not a bias, a time or label
embedding or an embedding table; the rest keep their stored type. Beside the GGUF file, the same
tensors dequantised by `gguf` itself, as a float32 safetensors file: the weights diffusers is
given as the reference.

    gguf_reference.py write SRC.safetensors OUT.gguf DEQUANTISED.safetensors [--type q8_0|q4_0]

DEQUANTISED "-" writes none (the benchmarks' full-size files).

Run with the reference Python (.venv-ref).
"""
import argparse
import json
import sys

import numpy as np


def quantise(name, array, qtype):
    """Whether stable-diffusion.cpp's converter would store `name` as `qtype`."""
    import gguf
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    skipped = ("time_embed.", "label_emb.", "embedding")
    return (array.shape[-1] % block == 0 and not name.endswith(".bias")
            and not any(s in name for s in skipped))


def write(src, out, dequantised, qtype_name):
    import gguf
    from safetensors.numpy import load_file, save_file
    qtype = getattr(gguf.GGMLQuantizationType, qtype_name.upper())
    tensors = load_file(src)
    writer = gguf.GGUFWriter(out, arch="imagegen-test")
    plain = {}
    counts = {}
    for name, array in sorted(tensors.items()):
        if array.ndim == 0:  # ggml tensors have at least one dimension (OpenCLIP's logit_scale)
            writer.add_tensor(name, array.reshape(1))
            plain[name] = array.astype(np.float32)
            continue
        if quantise(name, array, qtype):
            packed = gguf.quants.quantize(array.astype(np.float32), qtype)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=qtype)
            if dequantised != "-":
                plain[name] = gguf.quants.dequantize(packed, qtype).reshape(array.shape)
            counts[qtype_name] = counts.get(qtype_name, 0) + 1
        else:
            writer.add_tensor(name, array)
            if dequantised != "-":
                plain[name] = array.astype(np.float32)
            counts[str(array.dtype)] = counts.get(str(array.dtype), 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if dequantised == "-":
        return counts
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in plain.items()},
              dequantised, metadata={"format": "pt"})
    return counts


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("src")
    w.add_argument("out")
    w.add_argument("dequantised")
    w.add_argument("--type", default="q8_0", choices=["q8_0", "q4_0"])
    args = parser.parse_args(argv)
    print(json.dumps(write(args.src, args.out, args.dequantised, args.type)))


if __name__ == "__main__":
    main(sys.argv[1:])
