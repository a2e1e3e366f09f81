"""`textlstm train --nproc N`: re-run the same command under torchrun (see distributed.py).

Kept out of cli.py and free of torch imports: the launcher only builds a command line.
"""

import sys

import click


def launch_torchrun(nproc: int, ctx: click.Context) -> int:
    """Re-run this `train` command under `torch.distributed.run` with `nproc` processes.

    `--standalone` picks a free port on this machine, so concurrent runs do not collide.
    The command line is rebuilt from the parsed options (minus --nproc); returns the
    launcher's exit status.
    """
    import subprocess

    args = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name == "nproc" or value is None or value is False or value == ():
            continue
        flag = next(o for o in param.opts if o.startswith("--"))
        if param.is_flag:
            args.append(flag)
        elif param.multiple:
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "textlstm",
        "train",
        *args,
    ]
    click.echo("launching: " + " ".join(command[1:]), err=True)
    return subprocess.call(command)
