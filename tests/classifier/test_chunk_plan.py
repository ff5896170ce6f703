"""How a round is cut into chunks: JOB_CHUNK_SIZE each, the last full chunk halved in rounds
of four chunks or more, so that workers taking chunks in order finish the round together."""

import heapq

import pytest

from tests.classifier.helpers import make_batch, plan_here


def finish_times(sizes, workers):
    """Scans each of ``workers`` equally fast workers predicts, taking chunks in order."""
    loads = [(0, w) for w in range(workers)]
    for size in sizes:
        load, worker = heapq.heappop(loads)
        heapq.heappush(loads, (load + size, worker))
    return sorted(load for load, _ in loads)


def test_a_round_ends_on_two_half_chunks():
    from classifier.prediction_run import cut

    ids = [str(i) for i in range(240)]
    parts = cut(ids, 16)
    assert [len(p) for p in parts] == [16] * 14 + [8, 8]
    assert [i for p in parts for i in p] == ids  # every scan once, in order
    assert finish_times([16] * 15, 2) == [112, 128]  # chunks of one size: one worker waits 16 scans
    assert finish_times([len(p) for p in parts], 2) == [120, 120]
    assert [len(p) for p in cut([str(i) for i in range(250)], 16)] == [16] * 14 + [8, 8, 10]
    # Small rounds are cut as before.
    assert [len(p) for p in cut(ids[:7], 4)] == [4, 3]
    assert [len(p) for p in cut(ids[:8], 3)] == [3, 3, 2]
    assert [len(p) for p in cut(ids[:64], 1)] == [1] * 64


@pytest.mark.django_db
def test_a_planned_round_holds_every_scan_once(clinic_a, alice, vgg16_model, settings):
    settings.JOB_CHUNK_SIZE = 4
    batch, [job] = make_batch(clinic_a, alice, 20)
    chunks = plan_here(job)
    assert [(c.index, len(c.scan_ids)) for c in chunks] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 2), (5, 2)]
    planned = [scan_id for c in chunks for scan_id in c.scan_ids]
    assert sorted(planned) == sorted(str(pk) for pk in batch.scans.values_list("pk", flat=True))
