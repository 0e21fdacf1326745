#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The patch series of this tree, one directory per topic under patches/.

patches/NN-topic/cover     Subject line, blank line, blurb; optional "Depends-on: a b" line.
patches/NN-topic/series    One line per patch: patch file, then the new files it adds.
patches/NN-topic/*.patch   Commit message, "---", then diffs: of upstream files, and of new
                           files that an earlier patch added (a file that grows patch by patch).

A new file is kept once, in its final form, at its upstream path. The version a patch adds is
the final one with the later patches' diffs of that file reversed.

  series.py overlay STAGE PRISTINE   upstream files (pristine + diffs) and new files into STAGE
  series.py files                    the new files, one per line
  series.py commits GITDIR           one commit per patch on the current branch of GITDIR
  series.py topics                   "name first last deps..." per topic (1-based commit range)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCHES = os.path.join(TOP, "patches")


class Patch:
    def __init__(self, topic, path, files):
        self.topic = topic
        self.path = path
        self.files = files
        text = open(path).read()
        head, sep, body = text.partition("\n---\n")
        if not sep:
            raise SystemExit(f"{path}: no '---' line after the commit message")
        self.subject = re.search(r"^Subject: (.*)$", head, re.M).group(1)
        self.message = head.split("\n", 1)[1].strip("\n")
        self.diffs = split_diffs(body)


class Topic:
    def __init__(self, d):
        self.dir = d
        self.name = os.path.basename(d).split("-", 1)[1]
        cover = open(os.path.join(d, "cover")).read().rstrip("\n").split("\n")
        self.subject = cover[0]
        self.deps = []
        blurb = []
        for line in cover[2:]:
            if line.startswith("Depends-on:"):
                self.deps = line.split(":", 1)[1].split()
            else:
                blurb.append(line)
        self.blurb = "\n".join(blurb).strip("\n")
        self.patches = []
        for line in open(os.path.join(d, "series")):
            line = line.split("#", 1)[0].split()
            if line:
                self.patches.append(Patch(self, os.path.join(d, line[0]), line[1:]))


def split_diffs(body):
    """[(path, text)] for each 'diff --git' section of a patch body."""
    out = []
    for part in re.split(r"(?m)^(?=diff --git )", body):
        if not part.startswith("diff --git "):
            continue
        m = re.search(r"(?m)^\+\+\+ b/(\S+)", part) or re.search(r"^diff --git a/\S+ b/(\S+)", part)
        out.append((m.group(1), part))
    return out


def load():
    dirs = sorted(d for d in os.listdir(PATCHES) if re.match(r"\d\d-", d))
    topics = [Topic(os.path.join(PATCHES, d)) for d in dirs]
    names = [t.name for t in topics]
    for i, t in enumerate(topics):
        for dep in t.deps:
            if dep not in names[:i]:
                raise SystemExit(f"{t.name}: depends on {dep}, which is not an earlier topic")
        # With the dependencies of its dependencies, in series order.
        closure = set(t.deps)
        for u in reversed(topics[:i]):
            if u.name in closure:
                closure.update(u.deps)
        t.deps = [n for n in names[:i] if n in closure]
    return topics


def all_patches(topics):
    return [p for t in topics for p in t.patches]


def new_files(topics):
    return [f for p in all_patches(topics) for f in p.files]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def patch_file(dirname, text, reverse=False):
    args = ["patch", "-s", "-p1", "-F0", "--no-backup-if-mismatch", "-d", dirname]
    if reverse:
        args.append("-R")
    r = subprocess.run(args, input=text, text=True, capture_output=True)
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)


def versions(topics):
    """{(patch index, new file): content} for every new file a patch adds or changes."""
    patches = all_patches(topics)
    ours = set(new_files(topics))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in ours:
            os.makedirs(os.path.join(tmp, os.path.dirname(f)), exist_ok=True)
            shutil.copy(os.path.join(TOP, f), os.path.join(tmp, f))
        for i in range(len(patches) - 1, -1, -1):
            touched = [(f, d) for f, d in patches[i].diffs if f in ours]
            for f, _ in touched:
                out[(i, f)] = open(os.path.join(tmp, f)).read()
            for f in patches[i].files:
                out[(i, f)] = open(os.path.join(tmp, f)).read()
            for f, d in touched:
                patch_file(tmp, d, reverse=True)
    return out


def overlay(stage, pristine):
    topics = load()
    ours = set(new_files(topics))
    for p in all_patches(topics):
        for f, d in p.diffs:
            if f in ours:
                continue
            dst = os.path.join(stage, f)
            if not os.path.exists(dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if os.path.exists(os.path.join(pristine, f)):
                    shutil.copy(os.path.join(pristine, f), dst)
            try:
                patch_file(stage, d)
            except SystemExit as e:
                raise SystemExit(f"{os.path.relpath(p.path, TOP)} does not apply to {f}:\n{e}")
    for f in ours:
        if os.path.exists(os.path.join(pristine, f)):
            raise SystemExit(f"{f} exists upstream: change it with a patch")
        os.makedirs(os.path.join(stage, os.path.dirname(f)), exist_ok=True)
        shutil.copy(os.path.join(TOP, f), os.path.join(stage, f))


def commits(gitdir, signoff):
    """Applies every patch, in order, as one commit each on the current branch of gitdir."""
    topics = load()
    ours = set(new_files(topics))
    ver = versions(topics)
    git = ["git", "-C", gitdir]
    for i, p in enumerate(all_patches(topics)):
        for f, d in p.diffs:
            if f in ours:
                continue
            r = subprocess.run(git + ["apply", "--index", "-"], input=d, text=True,
                               capture_output=True)
            if r.returncode:
                raise SystemExit(f"{os.path.relpath(p.path, TOP)}: {f} does not apply:\n"
                                 + r.stderr)
        for f, d in p.diffs:
            if f in ours:
                write(gitdir, f, ver[(i, f)])
        for f in p.files:
            write(gitdir, f, ver[(i, f)])
        added = [f for f, _ in p.diffs if f in ours] + p.files
        if added:
            run(git + ["add", "-f", "--"] + added)
        msg = f"{p.subject}\n\n{p.message}\n\nSigned-off-by: {signoff}\n"
        run(git + ["commit", "-q", "-F", "-"], input=msg, text=True)


def write(gitdir, f, text):
    path = os.path.join(gitdir, f)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").write(text)


def main():
    cmd = sys.argv[1]
    if cmd == "overlay":
        overlay(sys.argv[2], sys.argv[3])
    elif cmd == "files":
        print("\n".join(new_files(load())))
    elif cmd == "commits":
        commits(sys.argv[2], sys.argv[3])
    elif cmd == "topics":
        n = 0
        for t in load():
            first = n + 1
            n += len(t.patches)
            print(t.dir, first, n, *t.deps)
    elif cmd == "cover":
        t = [t for t in load() if t.dir == sys.argv[2]][0]
        print(t.subject)
        print(t.blurb)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
