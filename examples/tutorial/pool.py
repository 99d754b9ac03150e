# The tutorial's own program src/multiprocess-reconstruct-pool.py, copied unchanged: the lab runs it as it is with
# `invoke scale --command "python3 examples/tutorial/pool.py"`. Not the lab's code.

from multiprocessing import Pool
import time
import math


def task(a):
    # 计算密集型
    for _ in range(int(1e7)):
        math.sin(40) + math.cos(40)
    return


if __name__ == '__main__':
    start_time = time.time()

    with Pool(processes=8) as p:
        res = p.map(task, list(range(6)))
    print("cost time: {:.4f}s".format(time.time() - start_time))
