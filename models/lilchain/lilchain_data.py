# File: models/lilchain/lilchain_data.py
# LilChain's data: a synthetic "follow the links" task whose chain of thought must look facts
# up far back in the prompt, plus real English (KJV + Brown) so free prompts get English-like
# text. Deterministic: the same seed gives the same problems on any machine (pure Python
# `random`, no dependence on the tokenizer or library versions).
#
# A problem (lengths are defaults):
#   user:      Links:
#              kemo tali             <- 1.5-2x L lines "from to" in random order: the main
#              vora = 417               chain of L links from the start, 1-4 distractor
#              ...                      chains, each chain ending in a line "name = number"
#              Start at kemo. Follow the links to the end and give the number there.
#   assistant: kemo tali              <- one line per link, each copied from the prompt line
#              tali roba                 whose first name is the current one
#              ...
#              vora = 417
#              Answer: 417
# Every step needs one fact from anywhere in the prompt (hundreds of tokens back), so
# attention that keeps only a sink and a recent window loses the facts, and a model that
# guesses a name it has already visited repeats the same lines: the output loops.
# A link line is "from to" with nothing between the names (not "from -> to"): the token
# before the fact is then the name being looked up, a one-token-offset induction lookup that
# a small transformer learns early; with an arrow between them the lookup needs a two-token
# offset, which the 12M model had not learned after 270 s on an H200 (docs/LIL.md, run 1).
#
#   python models/lilchain/lilchain_data.py --seed 2 -n 500 --out eval.jsonl   # a problem set
#   python models/lilchain/lilchain_data.py --show 1                             # one example
import argparse
import gzip
import json
import random

IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [EOT, IM_START, IM_END]  # ids 0, 1, 2 in the tokenizer
ANSWER_REGEX = r"Answer: (\d+)"
CONCLUSION_TEXT = "\nAnswer:"  # monitor conclude mode: what LilChain answers after
QUESTION = "Start at {start}. Follow the links to the end and give the number there."

# The chat template (lilserve's Jinja subset and transformers render it the same way).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def render_chat(messages, add_generation_prompt=True):
    """CHAT_TEMPLATE in Python (the tests check both give the same string)."""
    out = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    return out + (f"{IM_START}assistant\n" if add_generation_prompt else "")


def name_pool(size=640):
    """Made-up two-syllable names (consonant-vowel x 2), fixed by seed: the node names."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    names = sorted({a + b for a in syllables for b in syllables})
    random.Random(20261128).shuffle(names)
    return sorted(names[:size])


NAMES = name_pool()


class ChainConfig:
    """Problem size distribution. The defaults are what LilChain is trained and evaluated on."""

    def __init__(self, min_links=16, max_links=192, min_chains=2, max_chains=5):
        self.min_links, self.max_links = min_links, max_links
        self.min_chains, self.max_chains = min_chains, max_chains

    def as_dict(self):
        return dict(min_links=self.min_links, max_links=self.max_links,
                    min_chains=self.min_chains, max_chains=self.max_chains)


def link_line(a, b):
    """One link: the two names, one space apart (each name one token in either position)."""
    return f"{a} {b}"


def make_problem(rng, cfg=ChainConfig()):
    """One problem: {"prompt": user text, "cot": assistant text, "answer": "417", ...}."""
    links = rng.randint(cfg.min_links, cfg.max_links)  # links on the main chain
    chains = rng.randint(cfg.min_chains, cfg.max_chains)  # the main chain and distractors
    # Distractor links in all: half to all of the main chain's, split among the distractors.
    distractor_links = rng.randint(max(chains - 1, links // 2), links)
    cuts = sorted(rng.sample(range(1, distractor_links), chains - 2)) if chains > 2 else []
    bounds = [0] + cuts + [distractor_links]
    lengths = [links] + [bounds[i + 1] - bounds[i] for i in range(chains - 1)]
    nodes_needed = sum(n + 1 for n in lengths)
    if nodes_needed > len(NAMES):
        raise ValueError(f"problem needs {nodes_needed} names, the pool has {len(NAMES)}")
    names = rng.sample(NAMES, nodes_needed)
    values = rng.sample(range(100, 1000), chains)
    lines, paths, i = [], [], 0
    for c, n in enumerate(lengths):
        path = names[i:i + n + 1]
        i += n + 1
        lines += [link_line(a, b) for a, b in zip(path, path[1:])]
        lines.append(f"{path[-1]} = {values[c]}")
        paths.append(path)
    rng.shuffle(lines)
    main = paths[0]
    prompt = "Links:\n" + "\n".join(lines) + "\n" + QUESTION.format(start=main[0])
    cot = "".join(link_line(a, b) + "\n" for a, b in zip(main, main[1:]))
    cot += f"{main[-1]} = {values[0]}\nAnswer: {values[0]}"
    return {"prompt": prompt, "cot": cot, "answer": str(values[0]), "links": links,
            "lines": len(lines)}


RECALL_QUESTION = "Give the link of each name."


def make_recall(rng, min_facts, max_facts):
    """The recall drill (training only): n random facts "a b" in random order, then the
    assistant copies every fact again in another random order. The first name of each answer
    line is not predictable (no loss there); the second is the fact, looked up exactly as in a
    problem (the same tokens, the same one-offset induction lookup), so the lookup gets a
    direct gradient without the chain's other patterns. {"prompt", "cot"} like a problem."""
    n = rng.randint(max(1, min_facts), max(min_facts, max_facts))
    n = min(n, len(NAMES) // 2)
    names = rng.sample(NAMES, 2 * n)
    facts = list(zip(names[:n], names[n:]))
    prompt = "Links:\n" + "\n".join(link_line(a, b) for a, b in facts) + "\n" + RECALL_QUESTION
    rng.shuffle(facts)
    return {"prompt": prompt, "cot": "".join(link_line(a, b) + "\n" for a, b in facts), "facts": n}


def curriculum_stages(full):
    """Training stages of the gated curriculum, easiest first, ending with `full` (the
    evaluation's distribution): one chain of 4-8 links (a handful of candidate facts, where
    the lookup forms), then longer chains and more distractors. Stages are clipped to `full`
    and duplicates dropped, so a small task (--tiny) gets fewer stages."""
    grid = [(4, 8, 1, 1), (4, 16, 1, 2), (8, 32, 2, 3), (16, 64, 2, 5), (16, 128, 2, 5)]
    stages, seen = [], set()
    for lo, hi, clo, chi in grid:
        hi = min(hi, full.max_links)
        lo = min(lo, hi, full.min_links) if lo > full.min_links else lo
        chi = min(chi, full.max_chains)
        clo = min(clo, chi)
        key = (lo, hi, clo, chi)
        if key == (full.min_links, full.max_links, full.min_chains, full.max_chains) or key in seen:
            continue
        seen.add(key)
        stages.append(ChainConfig(lo, hi, clo, chi))
    return stages + [full]


def problem_set(seed, n, cfg=ChainConfig()):
    rng = random.Random(seed)
    return [make_problem(rng, cfg) for _ in range(n)]


def eval_record(i, p, seed):
    """A problem as one line of `lilctl eval` input."""
    return {"id": f"chain-s{seed}-{i:04d}", "messages": [{"role": "user", "content": p["prompt"]}],
            "answer": p["answer"], "answer_regex": ANSWER_REGEX, "links": p["links"],
            "reference_output": p["cot"]}


# ----------------------------------------------------------------------------------------
# English
# ----------------------------------------------------------------------------------------

def load_english(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def english_span(rng, paragraphs, min_chars, max_chars):
    """Consecutive paragraphs from a random start, cut to [min_chars, max_chars] at a space."""
    i = rng.randrange(len(paragraphs))
    target = rng.randint(min_chars, max_chars)
    text = paragraphs[i]
    while len(text) < target and i + 1 < len(paragraphs):
        i += 1
        text += "\n" + paragraphs[i]
    if len(text) > target:
        cut = text.rfind(" ", 0, target)
        text = text[:cut if cut > target // 2 else target]
    return text


def make_english_chat(rng, paragraphs):
    """user: "Continue the text:" + a few sentences; assistant: what follows."""
    text = english_span(rng, paragraphs, 600, 2400)
    split = text.find(". ", rng.randint(60, 300))
    if split < 0 or split > len(text) - 200:
        split = text.find(" ", len(text) // 4)
    head, tail = text[:split + 1].strip(), text[split + 1:].strip()
    return {"prompt": "Continue the text:\n" + head, "cot": tail}


def main():
    ap = argparse.ArgumentParser(description="LilChain problem sets (JSON Lines for lilctl eval)")
    ap.add_argument("--seed", type=int, default=2, help="2 is the held-out evaluation seed")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--out", default="-")
    ap.add_argument("--min-links", type=int, default=ChainConfig().min_links)
    ap.add_argument("--max-links", type=int, default=ChainConfig().max_links)
    ap.add_argument("--show", type=int, default=0, help="print this many problems as text")
    args = ap.parse_args()
    cfg = ChainConfig(args.min_links, args.max_links)
    problems = problem_set(args.seed, max(args.n, args.show), cfg)
    if args.show:
        for p in problems[:args.show]:
            print(render_chat([{"role": "user", "content": p["prompt"]}]) + p["cot"] + IM_END)
        return
    out = open(args.out, "w") if args.out != "-" else None
    for i, p in enumerate(problems[:args.n]):
        line = json.dumps(eval_record(i, p, args.seed))
        print(line, file=out) if out else print(line)
    if out:
        out.close()


if __name__ == "__main__":
    main()
