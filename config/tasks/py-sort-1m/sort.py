"""Candidate for the py-sort-1m task: sort(xs) returns the integers of xs in ascending order.

The baseline is a plain top-down merge sort. The evaluator imports this file in its own process
and times one call to sort() on 1,000,000 random 32-bit integers.
"""


def merge(left, right):
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def sort(xs):
    if len(xs) <= 1:
        return list(xs)
    mid = len(xs) // 2
    return merge(sort(xs[:mid]), sort(xs[mid:]))
