# File: models/lilchain/lilchain_data.py
# LilChain's data: a synthetic "follow the links" task whose chain of thought must look facts
# up far back in the prompt, plus real English (KJV + Brown) so free prompts get English-like
# text. Deterministic: the same seed gives the same problems on any machine (pure Python
# `random`, no dependence on the tokenizer or library versions).
#
# A problem (lengths are defaults):
#   user:      Links:
#               kemo tali            <- 1.5-2x L lines " from to" in random order: the main
#               vora 47                 chain of L links from the start, 1-4 distractor
#              ...                      chains, each chain ending in a line " name number"
#              Start at kemo. Follow the links to the end and give the number there.
#   assistant:  kemo tali             <- one line per link, each copied from the prompt line
#               tali roba                whose first name is the current one
#              ...
#               vora 47
#              Answer: 47
# Every step needs one fact from anywhere in the prompt (hundreds of tokens back), so
# attention that keeps only a sink and a recent window loses the facts, and a model that
# guesses a name it has already visited repeats the same lines: the output loops.
# A link line is " from to": a leading space, then the two names one space apart. The space
# makes every name the same token (" kemo") wherever it stands, at a line start, as a fact,
# in the question and in the answer, so the lookup is a plain one-token induction copy
# (find the earlier " kemo" followed by a name, copy that name) on the same tokens that the
# copy drill below trains an induction head on. Until v4 lines began without the space and
# a key was the other token of the name ("kemo", only ever seen at a line start and never
# predicted by any drill): no CPU probe learned that lookup, even in a model whose
# induction head already copied space-form names at 0.99 (docs/LIL.md, v4). Before run 2
# the lines were "from -> to", a two-token offset (run 1).
# The end of a chain is " name 47": the name, then a two-digit number that is one token
# (" 47": the tokenizer keeps up to two digits and one space together), so the value is
# found by exactly the lookup that finds a link's second name. Run 3 wrote " name = 417":
# the model followed every chain correctly and then copied another chain's number (31.6%
# exact). Runs 4 and 5 wrote the digits as separate tokens right after the name (" 4", "1",
# "7" and " 4", "7"): the first digit was copied right, the last one mostly not (64.3%, 40.2%
# exact; docs/LIL.md): a lookup keyed on a digit is not the one the model learned.
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


# Every consonant-vowel-consonant-vowel word of the English corpus (KJV + Brown,
# prepare_english.py), kept out of the node names: a name that is also an English word
# ("like", "make", "name" and 45 others were names until v4) has a token the English rows
# train for another use, and a question such as "Give the link of each name." then held a
# node name.
ENGLISH_WORDS = frozenset((
    "babe bade bake baku bale bali bani bare bari base bede bela beno bera beri beta bete "
    "bevo bide bile bini bite bolo bona bone bore buri buzi dade dale dali dame dana dane "
    "dara dare data date dave demi dene dere didi dime dine dire diva dive dodo dole dome "
    "domi done dope dora dose dote dove duke dune dura fade fake fame fare faro fate faze "
    "fela fete fide fife fike file fine fire five fore fudo fuse gaba gadi gage gala gale "
    "game gara gate gave gaza gaze geba gene gera gibe gide gino give gogo gone gore guni "
    "guru gute kale kali kare kate kava keno kika kine kira kite kivu kola kore lade lafe "
    "lake lama lame lana lane late lava laze lena leni levi life like lila lili lime line "
    "lisa lise lite live lobe lobo lola lone lope lore lose love luke lulu lura lure lute "
    "made magi make maku male mali mama mame mana mano manu mara mare masu mate maze mede "
    "meme memo mene menu mere mesa mete midi mike mile mimi mine mira mire miro miso mite "
    "mode mole mono more mose mote move moza mule muse mute muzo name nara nate nato nazi "
    "nebo neri nero neva nike nile nina nine nipe nise noli nolo none nope nori nose note "
    "nova novo nude paba page pale palo pane papa pare pari paso pate pati pave peli pena "
    "peru pete pike pile pine pipe poke pole polo pope pore pose puke pure rage rake rama "
    "rape rare rasa rase rata rate reba redo regi rena reno ride rime ripa ripe rise rite "
    "robe rode role rome rope rosa rose rove rube rude rule ruse saba safe saga sage sago "
    "sake sako sala sale salu same sana sane sara sari save seba sela semi sera side silo "
    "sina sine sino site situ siva size soba soda sodi sofa sole solo soma some sore sure "
    "susi take tale tame tape tara tare tate tema tide tile time tire tito tode tofu tola "
    "tole tone toni tore tote toto tuba tube tune turu vade vale vasa vase veda vera vere "
    "vero veto vida vile vine visa vise vita viva vive vivo vote zara zaza zeme zeri zero "
    "ziba zina ziza zoba zone").split())


def name_pool(size=640):
    """Made-up two-syllable names (consonant-vowel x 2, no English word), fixed by seed: the
    node names."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    names = sorted({a + b for a in syllables for b in syllables} - ENGLISH_WORDS)
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
    """One link: a leading space, then the two names one space apart, so both names are the
    single token " name", the same token as everywhere else the name occurs."""
    return f" {a} {b}"


def value_line(name, value):
    """The end of a chain: " name number" (tokens " name", " d", "d", "d")."""
    return f" {name} {value}"


VALUES = range(10, 100)  # a chain's number: one token " 47" (lilchain_tokenizer.py)


def chain_values(rng, n):
    """n distinct two-digit numbers, each the single token " 47": the value is copied by the
    same one-token lookup as a link's second name."""
    return rng.sample(VALUES, n)


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
    values = chain_values(rng, chains)
    lines, paths, i = [], [], 0
    for c, n in enumerate(lengths):
        path = names[i:i + n + 1]
        i += n + 1
        lines += [link_line(a, b) for a, b in zip(path, path[1:])]
        lines.append(value_line(path[-1], values[c]))
        paths.append(path)
    rng.shuffle(lines)
    main = paths[0]
    prompt = "Links:\n" + "\n".join(lines) + "\n" + QUESTION.format(start=main[0])
    cot = "".join(link_line(a, b) + "\n" for a, b in zip(main, main[1:]))
    cot += value_line(main[-1], values[0]) + f"\nAnswer: {values[0]}"
    return {"prompt": prompt, "cot": cot, "answer": str(values[0]), "links": links,
            "lines": len(lines)}


RECALL_QUESTION = "Give the link of each name."
COPY_QUESTION = "Repeat them from any name on."


def make_recall(rng, min_facts, max_facts):
    """The recall drill (training only): n random facts in random order, links "a b" and
    1-5 value lines "c 47" (chain_values), then the assistant copies every fact again in
    another random order. The first name of each answer line is not predictable (no loss
    there); what follows it is looked up exactly as in a problem (the same tokens, the same
    one-offset induction lookup), so the lookup gets a direct gradient without the chain's
    other patterns. {"prompt", "cot"} like a problem."""
    n = rng.randint(max(1, min_facts), max(min_facts, max_facts))
    v = rng.randint(1, 5)
    n = min(n, len(NAMES) // 2 - v)
    names = rng.sample(NAMES, 2 * n + v)
    lines = [link_line(a, b) for a, b in zip(names[:n], names[n:2 * n])]
    lines += [value_line(c, x) for c, x in zip(names[2 * n:], chain_values(rng, v))]
    rng.shuffle(lines)
    prompt = "Links:\n" + "\n".join(lines) + "\n" + RECALL_QUESTION
    rng.shuffle(lines)
    return {"prompt": prompt, "cot": "".join(x + "\n" for x in lines), "facts": n + v}


def make_copy(rng, min_names=12, max_names=24):
    """The copy drill (training only): a list of random names, then the assistant repeats it
    from a random point on. Every answer token after the first (which is the model's pick, no
    loss there) is an induction copy with the whole run before it as matching context: the
    setting where small transformers form an induction head (docs/LIL.md, v4: ~400 CPU steps
    of a 2-layer probe, where the recall drill and the chain alone formed none in 2,000), and
    on the very tokens (" name") whose one-token lookup the task needs.
    {"prompt", "cot"} like a problem."""
    n = rng.randint(min_names, max_names)
    names = rng.sample(NAMES, n)
    start = rng.randrange(n - 2)
    prompt = "Names:" + "".join(" " + x for x in names) + "\n" + COPY_QUESTION
    return {"prompt": prompt, "cot": "".join(" " + x for x in names[start:]), "names": n}


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
