"""A function of your own for the lab to scale: crunch(n) does n units of work and returns a
result (the lab splits n into chunks over a Pool's workers and checks the chunks' results)."""


def crunch(n):
    """n units of pure-Python arithmetic: CPU-bound, so it should scale with the CPUs."""
    total = 0
    for i in range(n):
        total += i % 7
    return total
