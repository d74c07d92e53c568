#!/bin/sh
# Point the overlays at a new image: IMAGE_REPO/<name>:TAG for echo-svc and
# loadgen (deploy/components/images, and IMAGE_REPO in deploy/config.env).
# Argo CD notices the commit and rolls both clusters to it.
#
#   scripts/deploy/gitops-bump.sh IMAGE_REPO TAG [--push]
#
# Without --push: edits the files and shows the diff (commit it yourself).
# With --push (CI, after the images are pushed): commits and pushes to the
# current branch. If the branch moved meanwhile, it does not rebase: a newer
# commit is there, its own CI run builds its own image and bumps to it, and
# this older tag must not overwrite that (CI's clone is shallow, too). A push made
# with the workflow's GITHUB_TOKEN starts no new workflow run, and the
# message carries [skip ci] for any other CI, so this never loops.
# Exit status: 0 done or nothing to change, 1 failure, 2 usage.
set -eu
cd "$(dirname "$0")/../.."
repo=${1:?usage: gitops-bump.sh IMAGE_REPO TAG [--push]}
tag=${2:?usage: gitops-bump.sh IMAGE_REPO TAG [--push]}
push=${3:-}
case "$push" in ""|--push) ;; *) echo "gitops-bump: unknown argument '$push'" >&2; exit 2 ;; esac

# Two paths without spaces: one word each where $files is unquoted.
files="deploy/config.env deploy/components/images/kustomization.yaml"
python3 scripts/deploy/course_config.py set-image "$repo" "$tag"
if git diff --quiet -- $files; then
  echo "gitops:bump: the overlays already deploy $repo/{echo-svc,loadgen}:$tag"
  exit 0
fi
git --no-pager diff -- $files
[ "$push" = --push ] || { echo "gitops:bump: commit and push this to deploy it"; exit 0; }

branch=$(git rev-parse --abbrev-ref HEAD)
git -c user.name="${GIT_AUTHOR_NAME:-ci}" -c user.email="${GIT_AUTHOR_EMAIL:-ci@users.noreply.github.com}" \
  commit -m "deploy: echo-svc and loadgen at $tag [skip ci]" -- $files
if ! git push origin "HEAD:$branch"; then
  echo "gitops:bump: $branch moved since this build; its newer commit's run deploys its own image, so $tag is not pushed" >&2
  exit 0
fi
