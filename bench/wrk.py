"""wrk, the load generator: one run pinned to its own core, and the figures of its report."""
import dataclasses
import pathlib
import re
import subprocess

POST_LUA = pathlib.Path(__file__).with_name('post.lua')
CORE = 1  # the server under load gets core 0

# wrk prints times with the unit that keeps the number short (stats.c format_time).
_SECONDS_PER_UNIT = {'us': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0}
_TIME = r'([\d.]+)(us|ms|s|m|h)\b'


@dataclasses.dataclass(frozen=True)
class Result:
    requests_per_second: float
    requests: int  # completed in the run
    p50: float  # seconds
    p99: float  # seconds
    non_2xx: int  # wrk counts 3xx as success too
    socket_errors: int  # connect + read + write + timeout
    cpu_per_request: float = None  # seconds of the server's CPU, when run() was given `cpu`

    @property
    def errors(self):
        return self.non_2xx + self.socket_errors


def command(url, duration, connections, headers=()):
    """wrk's command line; ``headers``: ``'Name: value'`` lines sent with each request."""
    return ['taskset', '-c', str(CORE), 'wrk', '-t1', f'-c{connections}', f'-d{duration}s', '--latency',
            *(item for header in headers for item in ('-H', header)), '-s', str(POST_LUA), url]


def run(url, duration, connections, cpu=None, headers=()):
    """Load `url` for `duration` seconds; wrk bounds itself, the timeout bounds wrk.
    `cpu`, if given, returns the server's CPU seconds so far (Server.cpu)."""
    before = cpu() if cpu else None
    completed = subprocess.run(command(url, duration, connections, headers), capture_output=True,
                               text=True, timeout=duration + 30)
    if completed.returncode:
        raise RuntimeError(f'wrk exited with {completed.returncode} on {url}:\n'
                           f'{completed.stdout}{completed.stderr}')
    result = parse(completed.stdout)
    if cpu:
        result = dataclasses.replace(result, cpu_per_request=(cpu() - before) / max(result.requests, 1))
    return result


def parse(report):
    """The figures of a `wrk --latency` report; ValueError names what is missing."""
    return Result(
        requests_per_second=float(_find(r'^Requests/sec:\s+([\d.]+)', report, 'Requests/sec')),
        requests=int(_find(r'^\s+(\d+) requests in ', report, 'requests in')),
        p50=_seconds(*_find(rf'^\s+50%\s+{_TIME}', report, 'latency 50%', groups=2)),
        p99=_seconds(*_find(rf'^\s+99%\s+{_TIME}', report, 'latency 99%', groups=2)),
        non_2xx=int(_find(r'^\s*Non-2xx or 3xx responses:\s+(\d+)', report, default='0')),
        socket_errors=sum(int(count) for count in _find(
            r'^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)',
            report, groups=4, default=('0',) * 4)),
    )


def _find(pattern, report, what=None, groups=1, default=None):
    # wrk omits the error lines when there were none, hence the defaults.
    match = re.search(pattern, report, re.MULTILINE)
    if match:
        return match.group(1) if groups == 1 else match.groups()
    if default is not None:
        return default
    raise ValueError(f'no {what} in the wrk report:\n{report}')


def _seconds(number, unit):
    return float(number) * _SECONDS_PER_UNIT[unit]
