#!/usr/bin/env python3
"""Lint the GitHub workflows without reaching GitHub.

1. check-jsonschema validates each workflow against the GitHub workflow
   schema it ships (keys, types, `on:` triggers, job and step shapes).
2. Every `run:` script goes through shellcheck, as actionlint does, with
   `${{ ... }}` expressions replaced by a placeholder variable; a script
   that interpolates an expression straight into the shell is reported
   too (an injection risk with untrusted input such as branch names).

actionlint itself is not used: its PyPI wrapper downloads its binary from
GitHub when installed, which this project's CI cannot reach.
"""
import glob
import re
import subprocess
import sys

import yaml

UNSAFE = re.compile(r"\$\{\{\s*github\.(event\.|head_ref)")


def main() -> int:
    files = sorted(glob.glob(".github/workflows/*.yml"))
    if not files:
        print("check_workflows: no workflows found", file=sys.stderr)
        return 1
    status = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files]
    ).returncode
    scripts = 0
    for path in files:
        with open(path, encoding="utf-8") as handle:
            workflow = yaml.safe_load(handle)
        for job_name, job in (workflow.get("jobs") or {}).items():
            for index, step in enumerate(job.get("steps") or []):
                script = step.get("run")
                if not script:
                    continue
                scripts += 1
                where = f"{path}: job {job_name}, step {index + 1} ({step.get('name', 'run')})"
                if UNSAFE.search(script):
                    print(f"{where}: untrusted github context expanded into the shell; pass it through env:")
                    status = 1
                shell = "#!/usr/bin/env bash\nset -e\n" + re.sub(r"\$\{\{[^}]*\}\}", "${GH_EXPR}", script)
                result = subprocess.run(
                    ["shellcheck", "--shell=bash", "--severity=warning", "-"],
                    input=shell, text=True, capture_output=True,
                )
                if result.returncode != 0:
                    print(f"{where}: shellcheck:\n{result.stdout}")
                    status = 1
    print(f"check_workflows: {len(files)} workflows, {scripts} run scripts, "
          + ("OK" if status == 0 else "FAILED"))
    return status


if __name__ == "__main__":
    sys.exit(main())
