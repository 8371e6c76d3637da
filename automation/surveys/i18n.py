"""The customer-facing survey texts in every language we serve (en, el, hu, ar)."""

from __future__ import annotations

LANGUAGES = ("en", "el", "hu", "ar")
RTL = frozenset({"ar"})

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "invite_csat": "Hello {name}, how did we do with your request “{subject}”? "
        "Tell us in one click: {link}",
        "invite_nps": "Hello {name}, how likely are you to recommend us to a friend? "
        "Answer here: {link}",
        "title": "Your feedback",
        "question_csat": "How satisfied are you with the help you received?",
        "question_nps": "How likely are you to recommend us to a friend or colleague?",
        "low_csat": "Very unsatisfied",
        "high_csat": "Very satisfied",
        "low_nps": "Not at all likely",
        "high_nps": "Extremely likely",
        "comment": "Anything you would like to add? (optional)",
        "submit": "Send feedback",
        "thanks": "Thank you! Your feedback helps us get better.",
        "used": "This survey was already answered. Thank you!",
        "invalid": "This survey link is not valid or has expired.",
        "pick": "Please choose a score.",
        "about": "About your request #{number}",
    },
    "el": {
        "invite_csat": "Γεια σας {name}, πώς τα πήγαμε με το αίτημά σας «{subject}»; "
        "Πείτε μας με ένα κλικ: {link}",
        "invite_nps": "Γεια σας {name}, πόσο πιθανό είναι να μας προτείνετε σε έναν φίλο; "
        "Απαντήστε εδώ: {link}",
        "title": "Η γνώμη σας",
        "question_csat": "Πόσο ικανοποιημένοι είστε με τη βοήθεια που λάβατε;",
        "question_nps": "Πόσο πιθανό είναι να μας προτείνετε σε έναν φίλο ή συνάδελφο;",
        "low_csat": "Καθόλου ικανοποιημένος",
        "high_csat": "Πολύ ικανοποιημένος",
        "low_nps": "Καθόλου πιθανό",
        "high_nps": "Εξαιρετικά πιθανό",
        "comment": "Θέλετε να προσθέσετε κάτι; (προαιρετικό)",
        "submit": "Αποστολή",
        "thanks": "Ευχαριστούμε! Η γνώμη σας μας βοηθά να γινόμαστε καλύτεροι.",
        "used": "Αυτή η έρευνα έχει ήδη απαντηθεί. Ευχαριστούμε!",
        "invalid": "Ο σύνδεσμος δεν είναι έγκυρος ή έχει λήξει.",
        "pick": "Παρακαλούμε επιλέξτε βαθμολογία.",
        "about": "Σχετικά με το αίτημά σας #{number}",
    },
    "hu": {
        "invite_csat": "Kedves {name}! Mennyire volt elégedett a(z) „{subject}” ügyének "
        "intézésével? Egy kattintással jelezheti: {link}",
        "invite_nps": "Kedves {name}! Mennyire valószínű, hogy ajánlana minket egy barátjának? "
        "Válaszoljon itt: {link}",
        "title": "Visszajelzés",
        "question_csat": "Mennyire elégedett a kapott segítséggel?",
        "question_nps": "Mennyire valószínű, hogy ajánlana minket egy barátjának "
        "vagy kollégájának?",
        "low_csat": "Egyáltalán nem elégedett",
        "high_csat": "Nagyon elégedett",
        "low_nps": "Egyáltalán nem valószínű",
        "high_nps": "Nagyon valószínű",
        "comment": "Szeretne még valamit hozzáfűzni? (nem kötelező)",
        "submit": "Küldés",
        "thanks": "Köszönjük! A visszajelzése segít fejlődni.",
        "used": "Erre a kérdőívre már válaszolt. Köszönjük!",
        "invalid": "Ez a link érvénytelen vagy lejárt.",
        "pick": "Kérjük, válasszon pontszámot.",
        "about": "A(z) #{number} számú ügyével kapcsolatban",
    },
    "ar": {
        "invite_csat": "مرحبًا {name}، ما مدى رضاك عن معالجة طلبك «{subject}»؟ "
        "أخبرنا بنقرة واحدة: {link}",
        "invite_nps": "مرحبًا {name}، ما مدى احتمال أن توصي بنا لصديق؟ أجب هنا: {link}",
        "title": "رأيك يهمنا",
        "question_csat": "ما مدى رضاك عن المساعدة التي تلقيتها؟",
        "question_nps": "ما مدى احتمال أن توصي بنا لصديق أو زميل؟",
        "low_csat": "غير راضٍ إطلاقًا",
        "high_csat": "راضٍ جدًا",
        "low_nps": "غير محتمل إطلاقًا",
        "high_nps": "محتمل جدًا",
        "comment": "هل تود إضافة شيء؟ (اختياري)",
        "submit": "إرسال",
        "thanks": "شكرًا لك! ملاحظاتك تساعدنا على التحسن.",
        "used": "تمت الإجابة على هذا الاستبيان مسبقًا. شكرًا لك!",
        "invalid": "رابط الاستبيان غير صالح أو منتهي الصلاحية.",
        "pick": "يرجى اختيار تقييم.",
        "about": "بخصوص طلبك رقم {number}",
    },
}


def language_for(*candidates: str | None) -> str:
    """The first supported language among the candidates (``el-GR`` counts as ``el``), else en."""
    for candidate in candidates:
        if candidate:
            short = candidate.replace("_", "-").split("-")[0].lower()
            if short in LANGUAGES:
                return short
    return "en"


def text(language: str, key: str, **values: object) -> str:
    template = TEXTS.get(language, TEXTS["en"]).get(key) or TEXTS["en"][key]
    return template.format(**values) if values else template
