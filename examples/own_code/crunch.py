"""A function that scales: n units of pure-Python arithmetic, nothing shared between calls.

    invoke scale --target examples/own_code/crunch.py:crunch --cpus 1,2
"""


def crunch(n):
    """n units of work (one multiply-add each); the sum is deterministic and adds up across
    chunks, so the lab checks every chunk and the total."""
    total = 0
    for i in range(n):
        total += (i * 7) % 3
    return total
