#!/usr/bin/env python3
"""The course's per-fork settings and the few manifest lines derived from them.

deploy/config.env is the one place a trainee sets the Git URL Argo CD reads and
the registry images live in. Argo CD reads YAML from Git, so those values must
also stand in the manifests themselves; this module writes them there and
checks they agree:

  GIT_REPO_URL -> deploy/argocd/applicationset.yaml  spec.template.spec.source.repoURL
               -> deploy/argocd/rollouts-app.yaml    spec.source.repoURL
               -> deploy/argocd/appproject.yaml      spec.sourceRepos[0]
  IMAGE_REPO   -> deploy/components/images           images[].newName (<repo>/<name>)

It also writes the values that change while the course runs: the image tag
(CI moves it after a push), the other region's east-west gateway address, and
the canary lab's version (Lab 7.1 by commit).

  course_config.py apply                     config.env -> manifests
  course_config.py check                     exit 1 (listing each place) when they disagree
  course_config.py get KEY                   print GIT_REPO_URL, IMAGE_REPO or TAG
  course_config.py set-image REPO TAG        registry and tag in config.env and the component
  course_config.py set-remote REGION ADDR    the gateway address in deploy/overlays/REGION
  course_config.py set-canary VERSION [bad]  the Rollout's version (and 20% 503s) in deploy/rollouts

Edits are made line by line so comments and layout stay as written.
Exit status: 0 done, 1 a check failed or a file lacks the expected line, 2 usage.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "config.env"
APPSET = ROOT / "deploy" / "argocd" / "applicationset.yaml"
ROLLOUT_APP = ROOT / "deploy" / "argocd" / "rollouts-app.yaml"
ROLLOUT = ROOT / "deploy" / "rollouts" / "rollout.yaml"
PROJECT = ROOT / "deploy" / "argocd" / "appproject.yaml"
IMAGES = ROOT / "deploy" / "components" / "images" / "kustomization.yaml"
BINARIES = ("echo-svc", "loadgen")
REGIONS = ("us", "eu")


class ConfigError(Exception):
    """A file does not have the shape this module edits, or a value is invalid."""


def read_env(path: Path = CONFIG) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_]+", key):
            raise ConfigError(f"{shown(path)}:{number}: expected KEY=value, got {line!r}")
        values[key] = value.strip().strip('"')
    for key in ("GIT_REPO_URL", "IMAGE_REPO"):
        if not values.get(key):
            raise ConfigError(f"{shown(path)}: {key} is not set")
    return values


def check_image_repo(repo: str) -> str:
    # A registry path is lower case (OCI distribution spec) with no tag.
    if not re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+", repo):
        raise ConfigError(f"IMAGE_REPO {repo!r} is not a lower-case registry path like ghcr.io/owner")
    return repo


def check_tag(tag: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise ConfigError(f"image tag {tag!r} is not a valid tag")
    return tag


def check_address(addr: str) -> str:
    try:
        ipaddress.ip_address(addr)
        return addr
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
                        addr.lower()):
        raise ConfigError(f"gateway address {addr!r} is neither an IP address nor a host name")
    return addr


def _replace(path: Path, pattern: str, repl, count_expected: int | None = 1) -> bool:
    """Rewrite the lines matching pattern; True when the file changed."""
    text = path.read_text()
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n == 0 or (count_expected is not None and n != count_expected):
        raise ConfigError(f"{shown(path)}: expected {count_expected} line(s) matching "
                          f"{pattern!r}, found {n}")
    if new != text:
        path.write_text(new)
        return True
    return False


def images(path: Path = IMAGES) -> dict[str, tuple[str, str]]:
    """name -> (newName, newTag) from the images component."""
    found: dict[str, tuple[str, str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if m := re.match(r"\s*- name: (\S+)", line):
            current = m.group(1)
            found[current] = ("", "")
        elif current and (m := re.match(r"\s*newName: (\S+)", line)):
            found[current] = (m.group(1), found[current][1])
        elif current and (m := re.match(r'\s*newTag: "?([^"\s]+)"?', line)):
            found[current] = (found[current][0], m.group(1))
    return found


def shown(path: Path) -> str:
    """The path as a message names it: inside the checkout relative to it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def deployed_tag(path: Path = IMAGES) -> str:
    tags = {tag for _, tag in images(path).values()}
    if len(tags) != 1:
        raise ConfigError(f"{shown(path)}: the images have different tags {sorted(tags)}")
    return tags.pop()


def set_image_repo(repo: str) -> None:
    check_image_repo(repo)
    for name in BINARIES:
        _replace(IMAGES, rf"^(\s*newName: )\S+/{re.escape(name)}$", rf"\g<1>{repo}/{name}")


def set_git_url(url: str) -> None:
    if not re.fullmatch(r"(https://|ssh://|git@)\S+", url):
        raise ConfigError(f"GIT_REPO_URL {url!r} is not an https://, ssh:// or git@ URL")
    for app in (APPSET, ROLLOUT_APP):
        _replace(app, r"^(\s*repoURL: )\S+$", rf"\g<1>{url}")
    _replace(PROJECT, r"^(  sourceRepos:\n    - )\S+$", rf"\g<1>{url}")


def apply() -> None:
    values = read_env()
    set_git_url(values["GIT_REPO_URL"])
    set_image_repo(values["IMAGE_REPO"])


def set_image(repo: str, tag: str) -> None:
    check_image_repo(repo)
    check_tag(tag)
    _replace(CONFIG, r"^IMAGE_REPO=.*$", f"IMAGE_REPO={repo}")
    set_image_repo(repo)
    _replace(IMAGES, r'^(\s*newTag: )"?[^"\s]*"?$', rf'\g<1>"{tag}"', count_expected=len(BINARIES))


def remote_file(region: str) -> Path:
    if region not in REGIONS:
        raise ConfigError(f"region must be one of {REGIONS}, not {region!r}")
    return ROOT / "deploy" / "overlays" / region / "remote-gateway.yaml"


def remote_address(region: str) -> str:
    m = re.search(r"^\s*- address: (\S+)$", remote_file(region).read_text(), re.M)
    if not m:
        raise ConfigError(f"{remote_file(region).relative_to(ROOT)}: no endpoint address line")
    return m.group(1)


def set_remote(region: str, addr: str) -> None:
    _replace(remote_file(region), r"^(\s*- address: )\S+$", rf"\g<1>{check_address(addr)}")


def disagreements() -> list[str]:
    """Every manifest line that does not follow deploy/config.env."""
    values = read_env()
    problems = []
    for app in (APPSET, ROLLOUT_APP):
        found_url = re.search(r"^\s*repoURL: (\S+)$", app.read_text(), re.M)
        if not found_url or found_url.group(1) != values["GIT_REPO_URL"]:
            problems.append(f"{shown(app)}: repoURL {found_url and found_url.group(1)!r} "
                            f"!= GIT_REPO_URL {values['GIT_REPO_URL']!r}")
    project = re.search(r"^  sourceRepos:\n    - (\S+)$", PROJECT.read_text(), re.M)
    if not project or project.group(1) != values["GIT_REPO_URL"]:
        problems.append(f"{PROJECT.relative_to(ROOT)}: sourceRepos {project and project.group(1)!r} "
                        f"!= GIT_REPO_URL {values['GIT_REPO_URL']!r}")
    found = images()
    for name in BINARIES:
        want = f"{values['IMAGE_REPO']}/{name}"
        have = found.get(name, ("<missing>", ""))[0]
        if have != want:
            problems.append(f"{IMAGES.relative_to(ROOT)}: {name} newName {have!r} != IMAGE_REPO/{name} {want!r}")
    try:
        check_tag(deployed_tag())
    except ConfigError as err:
        problems.append(str(err))
    return problems


def set_canary(version: str, bad: str = "") -> None:
    """Lab 7.1 by commit: the Rollout's version label (echo reports it), and with `bad`
    the faults that make 20% of answers 503 (echo's DEFAULT_FAULTS), which the analysis
    must catch. The same edit `task rollouts:canary` makes in the cluster."""
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", version):
        raise ConfigError(f"canary version {version!r} is not a label value")
    if bad not in ("", "bad"):
        raise ConfigError(f"set-canary takes VERSION [bad], not {bad!r}")
    _replace(ROLLOUT, r"^(        version: )\S+$", rf"\g<1>{version}")
    text = re.sub(r"^        - name: DEFAULT_FAULTS\n          value: .*\n", "", ROLLOUT.read_text(), flags=re.M)
    if bad:
        anchor = "        - name: LOG_FORMAT\n          value: json\n"
        if anchor not in text:
            raise ConfigError(f"{shown(ROLLOUT)}: no LOG_FORMAT entry to put DEFAULT_FAULTS after")
        text = text.replace(anchor, anchor + "        - name: DEFAULT_FAULTS\n          value: status=503:20\n")
    ROLLOUT.write_text(text)


def check() -> int:
    problems = disagreements()
    for p in problems:
        print(f"  FAIL {p} (run `task config:apply`)")
    if problems:
        return 1
    print("  ok   manifests follow deploy/config.env")
    return 0


def main(argv: list[str]) -> int:
    """No `match`: every task evaluates `get TAG` with the system python3, 3.9 on macOS."""
    usage = __doc__.split("\n\n")[3]
    commands = {
        ("apply", 0): lambda: apply(),
        ("check", 0): check,
        ("get", 1): lambda key: print(deployed_tag() if key == "TAG" else read_env()[key]),
        ("set-image", 2): set_image,
        ("set-remote", 2): set_remote,
        ("set-canary", 1): set_canary,
        ("set-canary", 2): set_canary,
        ("get-remote", 1): lambda region: print(remote_address(region)),
    }
    command = commands.get((argv[0], len(argv) - 1)) if argv else None
    if command is None:
        print(usage, file=sys.stderr)
        return 2
    try:
        return command(*argv[1:]) or 0
    except (ConfigError, KeyError, OSError) as err:
        print(f"course_config: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
