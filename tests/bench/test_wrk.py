"""wrk's output read into figures."""

from bench.wrk import parse

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8001/projects
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.20ms   12.01ms 210.33ms   80.12%
    Req/Sec   610.01     80.22   800.00     70.00%
  Latency Distribution
     50%   38.50ms
     75%   45.10ms
     90%  600.00us
     99%    1.20s
  12180 requests in 10.01s, 4.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1216.78
Transfer/sec:    460.12KB
"""


def test_wrk_output_gives_percentiles_in_ms_rate_and_failures() -> None:
    assert parse(WRK_OUTPUT) == {
        "p50": 38.5,
        "p75": 45.1,
        "p90": 0.6,
        "p99": 1200.0,
        "rps": 1216.78,
        "requests": 12180,
        "non_2xx": 7,
        "socket_errors": 5,
    }
