#!/usr/bin/env bash
# Copies into DIR/lib the shared libraries DIR/bootstrap needs that Lambda's provided.al2023 base
# does not provide, then checks what the package needs from the system's glibc and how big it is.
#   bundle-libs.sh DIR
# MAX_GLIBC (default 2.34, AL2023's) and MAX_UNZIPPED_MB (default 250, Lambda's zip limit) can be
# raised for experiments; exceeding them is an error because the function would not start.
set -euo pipefail
dir=$1
max_glibc=${MAX_GLIBC:-2.34}
max_mb=${MAX_UNZIPPED_MB:-250}
mkdir -p "$dir/lib"
# glibc's own libraries must come from the system that runs the binary.
ldd "$dir/bootstrap" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|\
    libanl.so.*|libnss_*|ld-linux*|libmvec.so.*) continue ;;
  esac
  cp -L --no-clobber "$lib" "$dir/lib/"
done
need=$( { for f in "$dir/bootstrap" "$dir"/lib/*; do
            [ -f "$f" ] && objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' || true
          done; } | sed 's/GLIBC_//' | sort -uV | tail -1)
if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
  echo "bundle-libs: the package needs glibc $need but provided.al2023 has $max_glibc;" \
       "build inside public.ecr.aws/sam/build-provided.al2023 (see deploy/sam/README.md)" >&2
  exit 1
fi
mb=$(du -sm "$dir" | cut -f1)
if [ "$mb" -gt "$max_mb" ]; then
  echo "bundle-libs: $mb MB unzipped exceeds Lambda's $max_mb MB limit for zip packages" >&2
  du -sm "$dir"/lib/* 2>/dev/null | sort -n | tail -5 >&2
  exit 1
fi
echo "bundle-libs: $(ls "$dir/lib" | wc -l) libraries, $mb MB unzipped, glibc >= ${need:-none} needed"
