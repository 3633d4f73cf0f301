"""Start an MXNet parameter-server job on this host: a scheduler, servers and workers.

    python tools/launch.py -n 2 -s 1 -- python train.py --network mnet --kvstore dist_sync ...

Every process gets the ps-lite environment (DMLC_ROLE, DMLC_PS_ROOT_URI,
DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER). Workers run the command;
the scheduler and servers only import mxnet, which serves until the workers finish.
If a worker fails the others are stopped and its exit code is returned.

On several hosts, start the same roles by hand with DMLC_PS_ROOT_URI set to the
scheduler host's address (docs/training.md, "Several machines").
"""
import argparse
import os
import socket
import subprocess
import sys
import time

from facekit import args as cli
from facekit.args import UsageError
from facekit.command import EXIT_SIGINT

__all__ = ['SERVE', 'free_port', 'role_env', 'start', 'build_parser', 'check_args', 'run']

SERVE = [sys.executable, '-c', 'import mxnet']


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def role_env(role, args, port):
    env = dict(os.environ)
    env.update({
        'DMLC_ROLE': role,
        'DMLC_PS_ROOT_URI': args.host,
        'DMLC_PS_ROOT_PORT': str(port),
        'DMLC_NUM_SERVER': str(args.num_servers),
        'DMLC_NUM_WORKER': str(args.num_workers),
        'DMLC_NODE_HOST': args.host,
        'PS_VERBOSE': env.get('PS_VERBOSE', '0'),
    })
    return env


def start(command, env, log_path):
    """Start ``command``; with ``log_path`` its stdout and stderr go to that file (the child keeps
    its own copy of the descriptor)."""
    if not log_path:
        return subprocess.Popen(command, env=env)
    with open(log_path, 'w') as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def build_parser():
    parser = cli.ArgumentParser(description='Launch a local MXNet parameter-server job.')
    parser.add_argument('-n', '--num_workers', type=cli.int_at_least(1), required=True,
                        help='number of worker processes')
    parser.add_argument('-s', '--num_servers', type=cli.int_at_least(1), default=1, help='number of server processes')
    parser.add_argument('--host', default='127.0.0.1', help='address of the scheduler (this host)')
    parser.add_argument('--port', type=int, default=0, help='scheduler port (default: a free port)')
    parser.add_argument('--log_dir', help='write worker{i}.log, server{i}.log, scheduler.log here')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='worker command, after --')
    return parser


def check_args(args):
    args.command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not args.command:
        raise UsageError('give the worker command after --')


def run(args, context):
    """Start the roles, wait for the workers; returns the first failed worker's exit status (0 if
    none failed, 130 after Ctrl-C)."""
    port = args.port or free_port()
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    def log(name):
        return os.path.join(args.log_dir, name + '.log') if args.log_dir else None

    helpers = [start(SERVE, role_env('scheduler', args, port), log('scheduler'))]
    helpers += [start(SERVE, role_env('server', args, port), log('server%d' % i)) for i in range(args.num_servers)]
    workers = []
    for i in range(args.num_workers):
        env = role_env('worker', args, port)
        env['DMLC_WORKER_ID'] = str(i)
        workers.append(start(args.command, env, log('worker%d' % i)))

    exit_code = 0
    try:
        while any(w.poll() is None for w in workers):
            failed = [w for w in workers if w.poll() not in (None, 0)]
            if failed:
                exit_code = failed[0].returncode
                break
            time.sleep(0.2)
        else:
            exit_code = next((w.returncode for w in workers if w.returncode), 0)
    except KeyboardInterrupt:
        exit_code = EXIT_SIGINT
    finally:
        for proc in workers + helpers:
            if proc.poll() is None and (exit_code or proc in workers):
                proc.terminate()
        deadline = time.time() + 30
        for proc in helpers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
    return exit_code
