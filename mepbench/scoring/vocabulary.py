"""mep-synth's cue vocabulary: the face and voice cue names and, per emotion, the subtitle sentences with the phrase
that carries the emotion. The generator renders it and scoring's lexicon is seeded from it; it lives in scoring so
that scoring never imports the generator (nor its signal-processing dependencies)."""

from __future__ import annotations

VISUAL_CUES = ("smiling mouth", "frowning mouth", "open mouth", "raised eyebrows", "furrowed brows",
               "wide eyes", "tears")
AUDIO_CUES = ("high pitch", "low pitch", "loud voice", "soft voice", "fast speech", "slow speech",
              "trembling voice", "sigh")

# (subtitle, text cue): the cue is the phrase of the sentence that carries the emotion.
SUBTITLES: dict[str, tuple[tuple[str, str], ...]] = {
    "happy": (
        ("I just got the job, I can't believe it!", "got the job"),
        ("We won the final, this is the best day ever!", "best day ever"),
        ("You remembered my birthday, thank you so much!", "thank you so much"),
        ("Finally on holiday, I love this place!", "I love this place"),
        ("She said yes, we're getting married!", "getting married"),
    ),
    "sad": (
        ("I miss her so much, nothing feels the same.", "miss her so much"),
        ("He passed away last night.", "passed away"),
        ("I failed the exam again, I'm so tired of trying.", "failed the exam"),
        ("Nobody came to my party.", "nobody came"),
        ("I have to say goodbye to this house forever.", "say goodbye"),
    ),
    "angry": (
        ("How dare you read my messages!", "how dare you"),
        ("I told you a hundred times, stop touching my things!", "stop touching my things"),
        ("You lied to me again!", "lied to me"),
        ("Get out of my office right now!", "get out of my office"),
        ("This is completely unacceptable!", "completely unacceptable"),
    ),
    "surprised": (
        ("Wait, you're here? I thought you were in Paris!", "you're here"),
        ("No way, you built this yourself?", "no way"),
        ("What? The whole team already knew?", "already knew"),
        ("I never expected to see you again!", "never expected"),
        ("Wow, the results are out already?", "wow"),
    ),
    "fearful": (
        ("Did you hear that? Someone is inside the house.", "someone is inside the house"),
        ("Please don't leave me alone in the dark.", "alone in the dark"),
        ("The brakes aren't working, we're going to crash!", "going to crash"),
        ("I think someone is following me.", "someone is following me"),
        ("What if they find us here?", "what if they find us"),
    ),
}

VOCABULARY = {"video": VISUAL_CUES, "audio": AUDIO_CUES}  # the cue names of the two perceptual modalities
