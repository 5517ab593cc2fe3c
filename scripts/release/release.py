#!/usr/bin/env python3
"""Release versioning for userapi: one version in Chart.yaml drives the image tag.

  release.py bump X.Y.Z            set Chart.yaml `version` and `appVersion` to X.Y.Z, and the
                                   userapi image tag in the prod Kustomize overlay (rule below)
  release.py check [--tag vX.Y.Z]  fail unless version == appVersion (valid SemVer), the git tag
                                   (when given) is "v" + that version, and the prod overlay's
                                   userapi image tag (when it pins one) is that version too
  release.py set-image-tag TAG FILE...
                                   point the userapi image in Helm values / Argo CD / Kustomize
                                   files at TAG (the GitOps promotion PR of deploy.yml)
  release.py set-chart-revision REV FILE...
                                   point every Argo CD Application source that renders the
                                   chart (path deploy/helm/userapi) at git revision REV, a
                                   release tag vX.Y.Z (the promotion PR of a release)

Edits are made in place on the exact characters of the values that change (located with the
YAML parser), so comments, key order, quoting and layout of every file stay as they were.

Image tag rule (generic, so it keeps working when files are added or reshaped):
  * Kustomize: in an `images:` list, an entry whose `name` or `newName` ends in the image
    repository name `userapi` (any registry/owner prefix) has its `newTag` set. An entry that
    pins a `digest` is refused: a digest cannot be derived from a version.
  * Helm values (also inline in an Argo CD Application's `helm.valuesObject`): an `image:`
    mapping whose `repository` ends in `userapi` has its `tag` set.
  Only existing keys are changed; nothing is added. `bump` applies the Kustomize rule to
  deploy/kustomize/overlays/prod/kustomization.y*ml when that overlay exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = Path("deploy/helm/userapi/Chart.yaml")
PROD_OVERLAY = Path("deploy/kustomize/overlays/prod")
IMAGE_NAME = "userapi"

# SemVer 2.0.0 (https://semver.org), without the leading "v" that git tags carry.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# OCI tag grammar (distribution spec).
OCI_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


class ReleaseError(Exception):
    pass


@dataclass
class Edit:
    node: yaml.ScalarNode
    value: str


def compose(path: Path) -> tuple[str, list[yaml.Node]]:
    text = path.read_text(encoding="utf-8")
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ReleaseError(f"{path}: not valid YAML: {err}") from err
    return text, [d for d in docs if d is not None]


def mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def render_scalar(old: yaml.ScalarNode, value: str) -> str:
    """The new value written in the old value's quoting style."""
    if old.style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if old.style == "'":
        return "'" + value.replace("'", "''") + "'"
    if old.style in ("|", ">"):
        raise ReleaseError(f"line {old.start_mark.line + 1}: block scalar for a version/tag is not supported")
    # A plain scalar must still read back as the same string (e.g. a tag "1234" would be an int).
    if yaml.safe_load(value) != value:
        return '"' + value + '"'
    return value


def apply_edits(path: Path, text: str, edits: list[Edit]) -> bool:
    new = text
    for e in sorted(edits, key=lambda e: e.node.start_mark.index, reverse=True):
        start, end = e.node.start_mark.index, e.node.end_mark.index
        new = new[:start] + render_scalar(e.node, e.value) + new[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def is_userapi_ref(ref: str) -> bool:
    # registry/owner/userapi[:tag][@digest] -> repository name "userapi"
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == IMAGE_NAME


def chart_versions(root: Path) -> tuple[Path, str, yaml.ScalarNode, yaml.ScalarNode]:
    path = root / CHART
    if not path.is_file():
        raise ReleaseError(f"{CHART} not found")
    text, docs = compose(path)
    if len(docs) != 1 or not isinstance(docs[0], yaml.MappingNode):
        raise ReleaseError(f"{CHART}: expected one YAML mapping")
    nodes = {}
    for key in ("version", "appVersion"):
        node = mapping_get(docs[0], key)
        if not isinstance(node, yaml.ScalarNode):
            raise ReleaseError(f"{CHART}: top-level `{key}` is missing or not a scalar")
        nodes[key] = node
    return path, text, nodes["version"], nodes["appVersion"]


def kustomize_image_nodes(doc: yaml.Node, where: str) -> list[yaml.Node]:
    """The userapi entries of a kustomization's `images:` list."""
    images = mapping_get(doc, "images")
    if not isinstance(images, yaml.SequenceNode):
        return []
    found = []
    for entry in images.value:
        refs = [mapping_get(entry, k) for k in ("name", "newName")]
        if any(isinstance(r, yaml.ScalarNode) and is_userapi_ref(r.value) for r in refs):
            if mapping_get(entry, "digest") is not None:
                raise ReleaseError(
                    f"{where}:{entry.start_mark.line + 1}: the userapi image is pinned by digest; "
                    "update that digest by hand (a digest cannot be derived from a version)"
                )
            found.append(entry)
    return found


def helm_image_nodes(node: yaml.Node) -> list[yaml.Node]:
    """Every `image:` mapping (at any depth) whose `repository` is the userapi image."""
    found = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "image" and isinstance(v, yaml.MappingNode):
                repo = mapping_get(v, "repository")
                if isinstance(repo, yaml.ScalarNode) and is_userapi_ref(repo.value):
                    found.append(v)
            found.extend(helm_image_nodes(v))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found.extend(helm_image_nodes(item))
    return found


def overlay_files(root: Path) -> list[Path]:
    overlay = root / PROD_OVERLAY
    return sorted(p for p in overlay.glob("kustomization.y*ml") if p.is_file()) if overlay.is_dir() else []


def set_image_tag(path: Path, tag: str, root: Path) -> int:
    """Sets the userapi tag in one file by both rules; returns how many values were set."""
    text, docs = compose(path)
    where = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    edits = []
    for doc in docs:
        for entry in kustomize_image_nodes(doc, where):
            tag_node = mapping_get(entry, "newTag")
            if isinstance(tag_node, yaml.ScalarNode):
                edits.append(Edit(tag_node, tag))
        for image in helm_image_nodes(doc):
            tag_node = mapping_get(image, "tag")
            if isinstance(tag_node, yaml.ScalarNode):
                edits.append(Edit(tag_node, tag))
    changed = apply_edits(path, text, edits)
    state = "updated" if changed else "already at that tag" if edits else "no userapi image tag found"
    print(f"release: {where}: {len(edits)} userapi image tag(s) -> {tag} ({state})")
    return len(edits)


def chart_source_nodes(doc: yaml.Node) -> list[yaml.Node]:
    """The `source`/`sources` entries of an Argo CD Application that render this chart."""
    if not isinstance(doc, yaml.MappingNode):
        return []
    kind = mapping_get(doc, "kind")
    if not (isinstance(kind, yaml.ScalarNode) and kind.value == "Application"):
        return []
    spec = mapping_get(doc, "spec")
    candidates = []
    single = mapping_get(spec, "source") if spec is not None else None
    if single is not None:
        candidates.append(single)
    many = mapping_get(spec, "sources") if spec is not None else None
    if isinstance(many, yaml.SequenceNode):
        candidates.extend(many.value)
    found = []
    for src in candidates:
        path = mapping_get(src, "path")
        if isinstance(path, yaml.ScalarNode) and path.value.strip("/") == str(CHART.parent):
            found.append(src)
    return found


def set_chart_revision(path: Path, revision: str, root: Path) -> int:
    """Sets targetRevision of the chart sources in one file; returns how many were set."""
    text, docs = compose(path)
    where = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    edits = []
    for doc in docs:
        for src in chart_source_nodes(doc):
            node = mapping_get(src, "targetRevision")
            if not isinstance(node, yaml.ScalarNode):
                raise ReleaseError(f"{where}:{src.start_mark.line + 1}: chart source has no targetRevision to set")
            edits.append(Edit(node, revision))
    changed = apply_edits(path, text, edits)
    state = "updated" if changed else "already there" if edits else "no chart source"
    print(f"release: {where}: {len(edits)} chart source(s) -> {revision} ({state})")
    return len(edits)


def cmd_bump(root: Path, version: str) -> None:
    if version.startswith("v"):
        raise ReleaseError(f"VERSION={version}: give the bare SemVer (e.g. 1.4.0); the git tag gets the 'v'")
    if not SEMVER.match(version):
        raise ReleaseError(f"VERSION={version!r} is not SemVer X.Y.Z[-pre][+build]")
    path, text, v_node, a_node = chart_versions(root)
    old = (v_node.value, a_node.value)
    apply_edits(path, text, [Edit(v_node, version), Edit(a_node, version)])
    print(f"release: {CHART}: version {old[0]} -> {version}, appVersion {old[1]} -> {version}")
    files = overlay_files(root)
    if not files:
        print(f"release: {PROD_OVERLAY}: no overlay, nothing else to bump")
    for f in files:
        set_image_tag(f, version, root)


def cmd_check(root: Path, tag: str | None) -> None:
    _, _, v_node, a_node = chart_versions(root)
    version, app_version = v_node.value, a_node.value
    problems = []
    if not SEMVER.match(version):
        problems.append(f"Chart.yaml version {version!r} is not SemVer")
    if app_version != version:
        problems.append(f"Chart.yaml appVersion {app_version!r} != version {version!r} (run: make release VERSION=x.y.z)")
    if tag is not None and tag != f"v{version}":
        problems.append(f"git tag {tag!r} != 'v' + Chart.yaml version ({'v' + version!r})")
    for f in overlay_files(root):
        where = str(f.relative_to(root))
        for doc in compose(f)[1]:
            for entry in kustomize_image_nodes(doc, where):
                tag_node = mapping_get(entry, "newTag")
                if isinstance(tag_node, yaml.ScalarNode) and tag_node.value != version:
                    problems.append(f"{where}: userapi newTag {tag_node.value!r} != version {version!r}")
    if problems:
        raise ReleaseError("release-check failed:\n  " + "\n  ".join(problems))
    print(f"release-check: ok: version {version}" + (f", tag {tag}" if tag else ""))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    bump = sub.add_parser("bump")
    bump.add_argument("version")
    check = sub.add_parser("check")
    check.add_argument("--tag", default=None, help="git tag being released, e.g. v1.4.0")
    tagp = sub.add_parser("set-image-tag")
    tagp.add_argument("tag")
    tagp.add_argument("files", nargs="+", type=Path)
    revp = sub.add_parser("set-chart-revision")
    revp.add_argument("revision")
    revp.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.cmd == "bump":
            cmd_bump(root, args.version)
        elif args.cmd == "check":
            cmd_check(root, args.tag or None)
        elif args.cmd == "set-chart-revision":
            rev = args.revision
            if not (rev.startswith("v") and SEMVER.match(rev[1:])):
                raise ReleaseError(f"{rev!r} is not a release tag vX.Y.Z (the chart source follows release tags, not branches)")
            total = sum(set_chart_revision(f.resolve(), rev, root) for f in args.files)
            if total == 0:
                raise ReleaseError("no Argo CD Application source with path deploy/helm/userapi in the given files")
        else:
            if not OCI_TAG.match(args.tag):
                raise ReleaseError(f"{args.tag!r} is not a valid image tag")
            total = sum(set_image_tag(f.resolve(), args.tag, root) for f in args.files)
            if total == 0:
                raise ReleaseError("no userapi image tag found in the given files (see the rule in this script)")
    except (ReleaseError, OSError) as err:
        print(f"release: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
