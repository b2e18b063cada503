#!/usr/bin/env python3
"""Prints the Lambda architecture `sam deploy` will use: the Architecture in samconfig.toml's
parameter_overrides if set there, else the template's default. The Makefile builds for it unless
ARCH is given, so that `sam build && sam deploy` never pairs an x86-64 bootstrap with an arm64
function.   sam_arch.py DEPLOY_SAM_DIR
"""
import pathlib
import re
import sys


def architecture(sam_dir):
    config = sam_dir / "samconfig.toml"
    if config.exists():
        match = re.search(r'Architecture=\\?"?(arm64|x86_64)', config.read_text())
        if match:
            return match.group(1)
    template = (sam_dir / "template.yaml").read_text()
    block = re.search(r"^  Architecture:\n((?:    .*\n)+)", template, re.M)
    default = re.search(r"^    Default: *(arm64|x86_64)", block.group(1), re.M) if block else None
    return default.group(1) if default else "arm64"


if __name__ == "__main__":
    print(architecture(pathlib.Path(sys.argv[1])))
