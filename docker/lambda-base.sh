#!/usr/bin/env bash
# Builds a Lambda base image for one Python version, from Debian packages and PyPI only:
#   docker/lambda-base.sh 3.12   ->  public.ecr.aws/lambda/python:3.12 and :3.12-x86_64
# AWS's own images cannot be pulled here (no registry answers), and SAM asks for these names.
# The image is laid out like AWS's: Python in /var/lang, awslambdaric and /var/runtime/bootstrap in
# /var/runtime, code in /var/task, layers in /opt, ENTRYPOINT /lambda-entrypoint.sh (which runs the
# Runtime Interface Emulator that SAM ships when no Lambda runtime API is given).
# Inputs: a Debian bookworm minbase root (debootstrap, cached under .docker/cache), the machine's
# pyenv build of that Python, awslambdaric from PyPI. Skipped when an image built from the same
# inputs exists (label org.openlookout.inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${1:?usage: $0 PYTHON_VERSION (3.12, 3.11)}"
AWSLAMBDARIC="${AWSLAMBDARIC:-awslambdaric==4.2.2}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
RUNTIME_LIBS="libssl3 libffi8 libsqlite3-0 libexpat1 libbz2-1.0 liblzma5 zlib1g"
IMAGE="public.ecr.aws/lambda/python:$VERSION"
CACHE="$PWD/.docker/cache"
export DOCKER_HOST="${DOCKER_HOST:-unix://$PWD/.docker/docker.sock}"

python_prefix() {  # the machine's CPython $VERSION (pyenv's shared build), or one on PATH
  local prefix
  prefix="$(pyenv prefix "$(pyenv versions --bare | grep -E "^${VERSION//./\\.}(\.[0-9]+)?$" | tail -1)" 2>/dev/null || true)"
  if [ -z "$prefix" ] && command -v "python$VERSION" >/dev/null; then
    prefix="$(dirname "$(dirname "$(readlink -f "$(command -v "python$VERSION")")")")"
  fi
  [ -x "$prefix/bin/python$VERSION" ] || { echo "no python$VERSION here (pyenv install $VERSION)" >&2; exit 1; }
  echo "$prefix"
}

PREFIX="$(python_prefix)"
SAM_RIE="$(ls .venv-sam/lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-x86_64 2>/dev/null | head -1)"
[ -n "$SAM_RIE" ] || { echo "no aws-lambda-rie in .venv-sam: run make install first" >&2; exit 1; }
INPUTS="$( (cat "$0"; echo "$VERSION $AWSLAMBDARIC $RUNTIME_LIBS"; "$PREFIX/bin/python$VERSION" -VV; sha256sum "$SAM_RIE") | sha256sum | cut -c1-16)"

if [ "$(docker image inspect -f '{{index .Config.Labels "org.openlookout.inputs"}}' "$IMAGE" 2>/dev/null)" = "$INPUTS" ]; then
  echo "$IMAGE is up to date ($INPUTS)"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
started=$(date +%s)

# 1. Debian bookworm, minimal, plus the shared libraries CPython's extension modules link.
mkdir -p "$CACHE"
BASE_TAR="$CACHE/bookworm-minbase.tar"
if [ ! -f "$BASE_TAR" ]; then
  tmp="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$tmp/root" "$DEBIAN_MIRROR" >"$CACHE/debootstrap.log"
  chroot "$tmp/root" apt-get install -y -qq --no-install-recommends $RUNTIME_LIBS >>"$CACHE/debootstrap.log"
  chroot "$tmp/root" apt-get clean
  rm -rf "$tmp/root"/var/lib/apt/lists/* "$tmp/root"/usr/share/{doc,man,info,locale}/* "$tmp/root"/var/cache/debconf/*-old
  tar -C "$tmp/root" -cf "$BASE_TAR.part" . && mv "$BASE_TAR.part" "$BASE_TAR"
  rm -rf "$tmp"
fi
ROOTFS="$(mktemp -d)/root"
trap 'rm -rf "$(dirname "$ROOTFS")"' EXIT
mkdir -p "$ROOTFS"
tar -C "$ROOTFS" -xf "$BASE_TAR"

# 2. CPython in /var/lang (as in AWS's images), without tests, tkinter, idle and site-packages.
LANG_DIR="$ROOTFS/var/lang"
mkdir -p "$LANG_DIR/bin" "$LANG_DIR/lib"
cp -a "$PREFIX/bin/python$VERSION" "$LANG_DIR/bin/"
cp -a "$PREFIX"/lib/libpython"$VERSION"*.so* "$LANG_DIR/lib/"
tar -C "$PREFIX/lib" -c --exclude="python$VERSION/site-packages/*" --exclude="python$VERSION/test" \
  --exclude="python$VERSION/idlelib" --exclude="python$VERSION/tkinter" --exclude="__pycache__" \
  --exclude="python$VERSION/config-*" --exclude="*/_tkinter*.so" "python$VERSION" | tar -C "$LANG_DIR/lib" -x
ln -s "python$VERSION" "$LANG_DIR/bin/python3"
ln -s "python$VERSION" "$LANG_DIR/bin/python"
echo /var/lang/lib >"$ROOTFS/etc/ld.so.conf.d/var-lang.conf"
chroot "$ROOTFS" /sbin/ldconfig
# pip, from the wheel CPython bundles (ensurepip: no download), for images built FROM this one.
chroot "$ROOTFS" /var/lang/bin/python3 -m ensurepip --default-pip >/dev/null
rm -rf "$LANG_DIR/lib/python$VERSION/ensurepip/_bundled"

# 3. The runtime interface client and the bootstrap that starts it, as AWS's images have them.
"$PREFIX/bin/python$VERSION" -m pip install -q --no-compile --target "$ROOTFS/var/runtime" "$AWSLAMBDARIC"
cat >"$ROOTFS/var/runtime/bootstrap" <<BOOT
#!/bin/sh
# Lambda's sys.path: the function's code, its layers, then the runtime.
export PYTHONPATH="/var/task:/opt/python/lib/python$VERSION/site-packages:/opt/python:/var/runtime\${PYTHONPATH:+:\$PYTHONPATH}"
exec /var/lang/bin/python$VERSION -m awslambdaric "\${1:-\$_HANDLER}"
BOOT
cat >"$ROOTFS/lambda-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# As in AWS's images: the handler is the one argument; without a Lambda runtime API (a plain
# `docker run`), the Runtime Interface Emulator serves one on port 8080.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
fi
exec /var/runtime/bootstrap
ENTRY
install -m 0755 "$SAM_RIE" "$ROOTFS/usr/local/bin/aws-lambda-rie"
chmod 0755 "$ROOTFS/var/runtime/bootstrap" "$ROOTFS/lambda-entrypoint.sh"
mkdir -p "$ROOTFS/var/task" "$ROOTFS/opt"

# 4. One layer; sorted names and fixed times so the same inputs give the same layer.
tar -C "$ROOTFS" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . |
  docker import \
    --change "ENV LANG=C.UTF-8 TZ=:/etc/localtime PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin" \
    --change "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib" \
    --change "ENV LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime" \
    --change "WORKDIR /var/task" \
    --change "LABEL org.openlookout.inputs=$INPUTS" \
    --change 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
    - "$IMAGE" >/dev/null
docker tag "$IMAGE" "$IMAGE-x86_64"
echo "$IMAGE built in $(( $(date +%s) - started )) s, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
