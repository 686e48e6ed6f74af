"""Realistic record values for the benchmark and the scale tests.

Turkish and Persian people and companies, phones written the many ways people write them
(Persian digits included), e-mails, sources, stages and owners with the skew of a real sales
team, and creation moments spread over three years in working hours.  Everything comes from
one seeded `random.Random`, so a run can be repeated.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

TR_FIRST = ("Ahmet Mehmet Mustafa Ali Hüseyin Hasan İbrahim İsmail Osman Yusuf Murat Ömer "
            "Emre Burak Serkan Kemal Cem Can Deniz Barış Onur Volkan Tolga Erkan Oğuz Kaan "
            "Ayşe Fatma Emine Hatice Zeynep Elif Meryem Şerife Sultan Hülya Özlem Gül Derya "
            "Esra Ebru Seda Pınar Selin Büşra Merve Gizem Tuğba İrem Çağla Şule Nur").split()
TR_LAST = ("Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan "
           "Kılıç Aslan Çetin Kara Koç Kurt Özkan Şimşek Polat Korkmaz Özer Erdoğan Güneş "
           "Aksoy Uçar Bulut Tekin Acar Keskin Ünal Karaca Avcı Sarı Çakır Güler Yazıcı "
           "Bozkurt Ateş Ergün Tunç Akın Türkmen").split()
#: Persian names in Persian script with the Latin spelling used in e-mail addresses.
FA_FIRST = (("رضا", "reza"), ("محمد", "mohammad"), ("علی", "ali"), ("حسین", "hossein"),
            ("مهدی", "mahdi"), ("امیر", "amir"), ("سعید", "saeed"), ("حمید", "hamid"),
            ("مجید", "majid"), ("بهرام", "bahram"), ("کوروش", "kourosh"), ("آرش", "arash"),
            ("سارا", "sara"), ("مریم", "maryam"), ("زهرا", "zahra"), ("فاطمه", "fatemeh"),
            ("نازنین", "nazanin"), ("مهسا", "mahsa"), ("نگار", "negar"), ("شیرین", "shirin"),
            ("لیلا", "leila"), ("پریسا", "parisa"), ("الهام", "elham"), ("آزاده", "azadeh"))
FA_LAST = (("احمدی", "ahmadi"), ("محمدی", "mohammadi"), ("کریمی", "karimi"),
           ("حسینی", "hosseini"), ("رضایی", "rezaei"), ("موسوی", "mousavi"),
           ("جعفری", "jafari"), ("صادقی", "sadeghi"), ("رحیمی", "rahimi"),
           ("تهرانی", "tehrani"), ("اصفهانی", "esfahani"), ("شیرازی", "shirazi"),
           ("نوری", "nouri"), ("قاسمی", "ghasemi"), ("کاظمی", "kazemi"), ("یزدانی", "yazdani"),
           ("فرهادی", "farhadi"), ("امینی", "amini"), ("باقری", "bagheri"), ("زمانی", "zamani"))
TR_COMPANY_WORDS = ("Anadolu Ege Marmara Toros Karadeniz Akdeniz Başkent Yıldız Güneş Atlas "
                    "Kervan Boğaziçi Kapadokya Fırat Dicle Ararat Trakya Pamukkale Uludağ "
                    "Erciyes Mavi Doğu Batı Yeni Birlik Öncü Lider Mega Nova").split()
TR_COMPANY_TRADES = ("Tekstil", "Makina", "Gıda", "İnşaat", "Kimya", "Otomotiv", "Enerji",
                     "Lojistik", "Mobilya", "Plastik", "Medikal", "Turizm", "Yazılım",
                     "Ambalaj", "Metal", "Tarım", "Elektrik", "Danışmanlık")
TR_LEGAL = ("A.Ş.", "Ltd. Şti.", "San. ve Tic. A.Ş.", "Tic. Ltd. Şti.")
FA_COMPANY_WORDS = ("آریا", "پارس", "سپاهان", "البرز", "کوثر", "نوین", "پیشرو", "ایران",
                    "خلیج فارس", "زاگرس", "دماوند", "کیان", "مهر", "آفتاب", "سپید")
FA_COMPANY_TRADES = ("صنایع غذایی", "نساجی", "پتروشیمی", "ماشین‌سازی", "بازرگانی",
                     "ساختمانی", "داروسازی", "حمل‌ونقل", "فولاد", "نرم‌افزار")
TR_CITIES = (("İstanbul", "marmara"), ("Ankara", "central_anatolia"), ("İzmir", "aegean"),
             ("Bursa", "marmara"), ("Antalya", "mediterranean"), ("Konya", "central_anatolia"),
             ("Gaziantep", "southeastern_anatolia"), ("Kayseri", "central_anatolia"),
             ("Mersin", "mediterranean"), ("Samsun", "black_sea"), ("Trabzon", "black_sea"),
             ("Denizli", "aegean"), ("Eskişehir", "central_anatolia"), ("Erzurum",
                                                                        "eastern_anatolia"))
FA_CITIES = (("تهران", "tehran"), ("مشهد", "iran_east"), ("اصفهان", "iran_central"),
             ("شیراز", "iran_south"), ("تبریز", "iran_west"), ("رشت", "iran_north"),
             ("کرج", "tehran"), ("اهواز", "iran_south"), ("یزد", "iran_central"))
DOMAINS = ("gmail.com", "hotmail.com", "yahoo.com", "outlook.com", "yandex.com")
SECTORS = ("manufacturing", "construction", "textile", "food", "automotive", "machinery",
           "chemicals", "energy", "health", "health_tourism", "tourism", "retail",
           "wholesale", "logistics", "it_software", "agriculture", "furniture")
SOURCES = (("google", 30), ("meta", 25), ("whatsapp", 15), ("web_form", 12),
           ("trade_fair", 8), ("referral", 7), ("other", 3))
LEAD_STAGES = (("new", 35), ("contacted", 25), ("qualified", 15), ("converted", 10),
               ("lost", 15))
OPPORTUNITY_STAGES = (("first_contact", 25), ("needs_analysis", 20), ("quote_sent", 20),
                      ("negotiation", 10), ("won", 12), ("lost", 13))
PROBABILITY = {"first_contact": 10, "needs_analysis": 25, "quote_sent": 50, "negotiation": 75,
               "won": 100, "lost": 0}
SEGMENTS = (("lead", 30), ("first_sale", 15), ("active", 30), ("loyal", 10), ("at_risk", 8),
            ("passive", 7))
TASK_STATUSES = (("not_started", 30), ("in_progress", 20), ("waiting", 10),
                 ("completed", 35), ("cancelled", 5))
PRIORITIES = (("low", 20), ("normal", 55), ("high", 20), ("urgent", 5))
TASK_SUBJECTS = ("Müşteriyi ara", "Teklif gönder", "Fuar sonrası takip", "Numune gönder",
                 "Toplantı ayarla", "Sözleşme taslağı", "Ödeme hatırlat", "Call back",
                 "Send the price list", "Demo presentation", "پیگیری تلفنی",
                 "ارسال پیش‌فاکتور", "هماهنگی جلسه", "Servis randevusu", "Keşif ziyareti")
OPPORTUNITY_WORDS = ("yedek parça", "bakım sözleşmesi", "kurulum", "enerji sistemi",
                     "hat modernizasyonu", "yıllık tedarik", "service contract", "spare parts",
                     "قرارداد نگهداری", "خط تولید", "tender", "pilot project")
LOST_REASONS = ("Fiyat yüksek", "Rakibi seçti", "Bütçe yok", "Yanıt vermiyor", "قیمت بالا")
TAGS = ("vip", "trade_fair", "health_tourism", "high_potential", "istanbul-fuar-2025",
        "bayi", "ihracat")
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
TR_ASCII = str.maketrans("çğıöşüÇĞİÖŞÜâî", "cgiosuCGIOSUai")

#: The first accounts are big customers that get this share of opportunities and tasks.
BIG_CUSTOMERS, BIG_CUSTOMER_SHARE = 50, 0.03
#: Sales teams and how many users each has (about twenty users in four teams).
TEAMS = (("istanbul", 7), ("ankara", 5), ("izmir", 4), ("tehran", 4))


@dataclass
class Owner:
    user_id: int
    team_id: int | None
    weight: float


@dataclass
class Generator:
    """Rows for `bulk_create`, drawn from one seeded random source."""

    owners: list[Owner]
    start: dt.datetime
    end: dt.datetime
    seed: int = 2026
    rng: random.Random = field(init=False)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self._owner_weights = [o.weight for o in self.owners]

    # -- small pieces ------------------------------------------------------------------
    def pick(self, weighted):
        keys, weights = zip(*weighted, strict=True)
        return self.rng.choices(keys, weights)[0]

    def owner(self) -> Owner:
        return self.rng.choices(self.owners, self._owner_weights)[0]

    def person(self) -> tuple[str, str]:
        """(full name as written, its ASCII spelling for e-mail addresses)."""
        if self.rng.random() < 0.62:
            first, last = self.rng.choice(TR_FIRST), self.rng.choice(TR_LAST)
            name = f"{first} {last}"
            return name, name.translate(TR_ASCII).lower()
        (first, first_latin), (last, last_latin) = (self.rng.choice(FA_FIRST),
                                                    self.rng.choice(FA_LAST))
        if self.rng.random() < 0.15:  # written in Latin letters
            return f"{first_latin.title()} {last_latin.title()}", f"{first_latin} {last_latin}"
        return f"{first} {last}", f"{first_latin} {last_latin}"

    def company(self, persian: bool | None = None) -> str:
        persian = self.rng.random() < 0.3 if persian is None else persian
        if persian:
            return f"{self.rng.choice(FA_COMPANY_TRADES)} {self.rng.choice(FA_COMPANY_WORDS)}"
        return (f"{self.rng.choice(TR_COMPANY_WORDS)} {self.rng.choice(TR_COMPANY_TRADES)} "
                f"{self.rng.choice(TR_LEGAL)}")

    def phone(self) -> str:
        """A mobile number, Turkish or Iranian, in one of the ways people type them."""
        rng = self.rng
        if rng.random() < 0.65:
            area, a, b, c = rng.choice((530, 532, 533, 535, 541, 542, 505, 506, 555)), \
                rng.randrange(1000), rng.randrange(100), rng.randrange(100)
            style = rng.randrange(4)
            if style == 0:
                return f"+90 {area} {a:03d} {b:02d} {c:02d}"
            if style == 1:
                return f"0{area} {a:03d} {b:02d} {c:02d}"
            if style == 2:
                return f"+90 ({area}) {a:03d}-{b:02d}{c:02d}"
            return f"0{area}{a:03d}{b:02d}{c:02d}"
        area, a, b = rng.choice((912, 913, 919, 921, 935, 936, 901)), rng.randrange(1000), \
            rng.randrange(10000)
        style = rng.randrange(3)
        if style == 0:
            return f"+98 {area} {a:03d} {b:04d}"
        if style == 1:
            return f"0{area} {a:03d} {b:04d}"
        return f"0{area}{a:03d}{b:04d}".translate(PERSIAN_DIGITS)

    def email(self, ascii_name: str) -> str:
        parts = ascii_name.split()
        local = ".".join(parts) if self.rng.random() < 0.6 else parts[0] + parts[-1][:1]
        return f"{local}{self.rng.randrange(1, 100000)}@{self.rng.choice(DOMAINS)}"

    def city(self) -> tuple[str, str]:
        return self.rng.choice(TR_CITIES) if self.rng.random() < 0.7 else \
            self.rng.choice(FA_CITIES)

    def customer(self, account_ids: list[int]) -> int:
        """An account: the first fifty are big customers with hundreds of records each."""
        if self.rng.random() < BIG_CUSTOMER_SHARE:
            return self.rng.choice(account_ids[:BIG_CUSTOMERS])
        return self.rng.choice(account_ids)

    def money(self, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randrange(low, high) * 100)

    def moments(self, count: int, part: int = 0, parts: int = 1) -> list[dt.datetime]:
        """`count` creation moments, in order, inside slice `part` of the period: working
        days and hours mostly, like records entered by people."""
        span = (self.end - self.start) / parts
        begin = self.start + span * part
        out = []
        for _ in range(count):
            moment = begin + span * self.rng.random()
            if moment.weekday() >= 5 and self.rng.random() < 0.8:
                moment -= dt.timedelta(days=2)
            hour = min(23, max(0, int(self.rng.gauss(13, 3))))
            out.append(moment.replace(hour=hour, minute=self.rng.randrange(60),
                                      second=self.rng.randrange(60)))
        out.sort()
        return out

    # -- records -----------------------------------------------------------------------
    def lead(self) -> dict:
        rng = self.rng
        owner = self.owner()
        row: dict = {"source": self.pick(SOURCES), "stage": self.pick(LEAD_STAGES),
                     "owner": owner.user_id, "team": owner.team_id}
        name, ascii_name = self.person()
        if rng.random() < 0.9:
            row["full_name"] = name
        if "full_name" not in row or rng.random() < 0.55:
            row["company"] = self.company()
        if rng.random() < 0.85:
            row["phone"] = self.phone()
            if rng.random() < 0.5:
                row["whatsapp"] = row["phone"]
        if "phone" not in row or rng.random() < 0.6:
            row["email"] = self.email(ascii_name)
        city, region = self.city()
        if rng.random() < 0.7:
            row.update(city=city, region=region)
        if rng.random() < 0.7:
            row["sector"] = rng.choice(SECTORS)
        if rng.random() < 0.4:
            row["estimated_value"] = {"amount": self.money(50, 50000), "currency":
                                      rng.choice(("TRY", "TRY", "TRY", "EUR", "USD"))}
        if rng.random() < 0.15:
            row["tags"] = rng.sample(TAGS, rng.randint(1, 2))
        if row["stage"] == "lost":
            row["lost_reason"] = rng.choice(LOST_REASONS)
        if rng.random() < 0.3:
            row["job_title"] = rng.choice(("Satın alma müdürü", "Genel müdür", "Owner",
                                           "مدیر خرید", "Mühendis"))
        row["marketing_consent"] = rng.random() < 0.4
        return row

    def account(self) -> dict:
        rng = self.rng
        owner = self.owner()
        company = rng.random() < 0.8
        row: dict = {"kind": "company" if company else "individual",
                     "segment": self.pick(SEGMENTS), "source": self.pick(SOURCES),
                     "owner": owner.user_id, "team": owner.team_id}
        name, ascii_name = self.person()
        if company:
            row.update(name=self.company(), sector=rng.choice(SECTORS),
                       tax_number=f"{rng.randrange(10**9, 10**10)}",
                       tax_office=rng.choice(("Kadıköy", "Mecidiyeköy", "Çankaya", "Konak")))
        else:
            row.update(name=name, national_id=f"{rng.randrange(10**10, 10**11)}")
        city, region = self.city()
        row.update(phone=self.phone(), email=self.email(ascii_name), billing_city=city,
                   region=region)
        if rng.random() < 0.5:
            row["payment_term_days"] = rng.choice((0, 15, 30, 45, 60, 90))
        return row

    def opportunity(self, account_ids: list[int], lead_ids: list[int]) -> dict:
        rng = self.rng
        owner = self.owner()
        stage = self.pick(OPPORTUNITY_STAGES)
        row: dict = {"stage": stage, "owner": owner.user_id, "team": owner.team_id,
                     "probability": PROBABILITY[stage], "source": self.pick(SOURCES),
                     "type": rng.choice(("new_business", "existing_business")),
                     "amount": {"amount": self.money(100, 200000), "currency": "TRY"},
                     "expected_close_date": (self.end + dt.timedelta(
                         days=rng.randrange(-900, 180))).date()}
        if account_ids:
            row["account"] = self.customer(account_ids)
        if lead_ids and rng.random() < 0.3:
            row["lead"] = rng.choice(lead_ids)
        row["name"] = f"{self.company(persian=False).split()[0]} {rng.choice(OPPORTUNITY_WORDS)}"
        return row

    def task(self, account_ids: list[int], opportunity_ids: list[int],
             lead_ids: list[int]) -> dict:
        rng = self.rng
        owner = self.owner()
        due = (self.end + dt.timedelta(days=rng.randrange(-1000, 60))).date()
        row: dict = {"subject": rng.choice(TASK_SUBJECTS), "status": self.pick(TASK_STATUSES),
                     "priority": self.pick(PRIORITIES), "due_date": due,
                     "start_date": due - dt.timedelta(days=rng.randrange(0, 10)),
                     "owner": owner.user_id, "team": owner.team_id}
        link = rng.random()
        if account_ids and link < 0.45:
            row["account"] = self.customer(account_ids)
        elif opportunity_ids and link < 0.75:
            row["opportunity"] = rng.choice(opportunity_ids)
        elif lead_ids:
            row["lead"] = rng.choice(lead_ids)
        return row


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(index of the chunk, rows in it) covering `total` rows."""
    for index, start in enumerate(range(0, total, size)):
        yield index, min(size, total - start)
