"""A function that scales: n units of pure-Python arithmetic, nothing shared between calls.

    invoke scale --target examples/own_code/crunch.py:crunch --cpus 1,2
"""


def crunch(n):
    """n units of work, each the same arithmetic on the same number, counted: the result is n,
    deterministic and adding up across chunks, so the lab checks every chunk and the total."""
    done = 0
    x = 12345
    for _ in range(n):
        done += (x * x + 1) % 97 > 0
    return done
