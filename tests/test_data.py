"""The human-numbers data and the book's batching, checked against the book's own code."""
import torch

from rnnfast import data


def test_counts_match_the_book():
    lines = data.human_numbers_lines()
    assert len(lines) == 9998
    ds = data.HumanNumbers.build()
    assert len(ds.tokens) == 63095
    assert len(ds.vocab) == 30
    assert ds.vocab[:10] == ["one", ".", "two", "three", "four", "five", "six", "seven",
                             "eight", "nine"]
    x, y = data.three_token_sequences(ds.nums)
    assert len(x) == 21031


def test_number_words():
    assert data.number_to_words(1) == "one"
    assert data.number_to_words(15) == "fifteen"
    assert data.number_to_words(40) == "forty"
    assert data.number_to_words(105) == "one hundred five"
    assert data.number_to_words(2120) == "two thousand one hundred twenty"
    assert data.number_to_words(9999) == "nine thousand nine hundred ninety nine"
    lines = data.human_numbers_lines()
    assert lines[7998] == "seven thousand nine hundred ninety nine"
    assert lines[7999] == "eight thousand one"          # 8000 is not in the data set


def test_sequences_as_the_book_makes_them():
    ds = data.HumanNumbers.build()
    nums = ds.nums.tolist()
    x, y = data.three_token_sequences(ds.nums)
    book = [(nums[i:i + 3], nums[i + 3]) for i in range(0, len(nums) - 4, 3)]
    assert x.tolist() == [s for s, _ in book] and y.tolist() == [t for _, t in book]
    sl = 16
    x4, y4 = data.shifted_sequences(ds.nums, sl)
    book4 = [(nums[i:i + sl], nums[i + 1:i + sl + 1]) for i in range(0, len(nums) - sl - 1, sl)]
    assert x4.tolist() == [s for s, _ in book4] and y4.tolist() == [t for _, t in book4]
    assert ds.decode(x4[0][:5]) == "one . two . three"


def book_group_chunks(ds, bs):
    m = len(ds) // bs
    new_ds = []
    for i in range(m):
        new_ds += [ds[i + m * j] for j in range(bs)]
    return new_ds


def test_group_chunks_order_matches_the_book():
    items = list(range(203))
    order = data.group_chunks_order(len(items), 8)
    assert order.tolist() == book_group_chunks(items, 8)


def test_stateful_batches_continue_each_row():
    ds = data.HumanNumbers.build()
    x, y = data.shifted_sequences(ds.nums, 16)
    got = list(data.batches(x, y, 64, stateful=True))
    assert len(got) == len(x) // 64
    # Row j of batch i+1 starts where row j of batch i ended, in the token stream.
    (x0, _), (x1, _) = got[0], got[1]
    starts = {tuple(x[k].tolist()): k for k in range(len(x))}
    for j in range(64):
        assert starts[tuple(x1[j].tolist())] == starts[tuple(x0[j].tolist())] + 1


def test_plain_batches_keep_the_short_last_batch():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    sizes = [len(b) for b, _ in data.batches(x, y, 4, stateful=False)]
    assert sizes == [4, 4, 2]


def test_encode_decode_round_trip():
    ds = data.HumanNumbers.build()
    text = "one thousand two hundred . one thousand two hundred one"
    assert ds.decode(ds.encode(text)) == text
