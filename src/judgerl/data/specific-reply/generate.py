# ruff: noqa: E501  (the templates are data: one reply per line reads best)
"""Write the `specific-reply` labelled set: does a support reply address the specific thing the
customer wrote, or is it a generic apology (or an answer to someone else's problem)?

Why a script: the set was written for judgerl's demo, from hand-written templates, and this file
is its source. It is deterministic (a fixed seed; run it again and the two JSONL files come out
byte for byte the same, tests/test_specific_reply_data.py checks that), so a reader can see
exactly how every row was made and change the templates rather than the rows.

How the labels are kept honest (substance, not surface tokens):
- every reply, specific or not, draws its opening and its closing from the same pools
  ("Sorry to hear that.", "Is there anything else I can help with?", ...), so apologies and
  courtesy say nothing about the label;
- negatives are of three kinds: a generic reply (no content about this message), a specific
  reply written for *another* scenario (concrete, on-topic-looking, but about a different
  problem: only comparing the reply with the message tells it apart), and an echo (it repeats the
  customer's words back and does nothing about them);
- the held-out part holds out whole scenarios (no message, item or reply template of a held-out
  scenario is seen in training), so agreement on it is agreement on problems the student never saw.

Rows are the scored format `judgerl validate` and `judgerl distill --labelled` read:
{"id", "prompt", "answer", "score": 1 (addresses it) or 0, "category": the scenario}.

    python src/judgerl/data/specific-reply/generate.py      # rewrites train.jsonl and held_out.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20
HELD_OUT_SHARE = 0.25

OPENINGS = ["", "Sorry to hear that.", "Thanks for getting in touch.", "Thank you for your message.",
            "We are sorry about this.", "Hello, and thanks for writing.", "Apologies for the trouble."]
CLOSINGS = ["", "Is there anything else I can help with?", "Have a nice day!", "Thanks for your patience.",
            "Let us know if you need more help.", "We appreciate your patience."]
GENERIC = [
    "We are sorry for any inconvenience this may have caused.",
    "We value you as a customer and will look into this.",
    "Your satisfaction is our top priority and we take this seriously.",
    "Our team is here to help and will get back to you as soon as possible.",
    "We understand how frustrating this can be and we appreciate your feedback.",
    "Thank you for bringing this to our attention; we will do our best.",
    "We have passed your message on to the right team.",
    "We always want our customers to be happy with our service.",
    "Please accept our apologies; we are working hard to improve.",
    "Your feedback helps us get better every day.",
    "We are looking into it and will be in touch shortly.",
    "We understand your concern and we are here for you.",
]

# Each scenario: slot values, message templates, specific replies (each does something about the
# message: an answer, a fix, an action tied to what was written) and echo replies (the message's
# words, nothing done). {item} etc. are filled from the scenario's slot values.
SCENARIOS: list[dict] = [
    {"id": "late-order", "slots": {"item": ["order #4471", "order #1182", "parcel"], "days": ["two", "three", "four"]},
     "messages": ["My {item} arrived {days} days late.", "Why did my {item} come {days} days after the promised date?",
                  "The {item} was {days} days late, this is not ok."],
     "specific": ["I have added a 10% voucher to your account for the {days}-day wait on your {item}.",
                  "The courier had a backlog last week; I have refunded your shipping cost for the late {item}.",
                  "Your {item} was held at the depot; the delivery fee is refunded and your next order ships free."],
     "echo": ["We see that your {item} arrived {days} days late.", "So your {item} came {days} days late."]},
    {"id": "change-address", "slots": {"item": ["parcel", "order", "package"]},
     "messages": ["Can I change the delivery address for my {item}?", "I moved, how do I send my {item} to my new address?",
                  "I typed the wrong street for my {item}, can you fix the address?"],
     "specific": ["Yes, you can change the address under My Orders until the {item} ships.",
                  "I can update it for you: reply with the new street and postcode before the {item} leaves us.",
                  "Addresses can be changed until dispatch; open the {item} in My Orders and edit the delivery address."],
     "echo": ["You would like to change the address for your {item}.", "We note you want a new address for the {item}."]},
    {"id": "noisy-blender", "slots": {"item": ["blender", "food processor", "mixer"]},
     "messages": ["The {item} I bought makes a loud noise.", "My new {item} rattles and screeches when I switch it on.",
                  "Is it normal that the {item} is so noisy?"],
     "specific": ["Please check the blade is seated tightly; if the {item} still screeches, we will replace it for free.",
                  "A loud {item} usually means a loose jug; send us a short video and we will arrange a replacement.",
                  "That is not normal for the {item}: stop using it and we will send a new one at no cost."],
     "echo": ["Your {item} makes a loud noise.", "We hear that the {item} is noisy."]},
    {"id": "ship-abroad", "slots": {"country": ["Canada", "Norway", "Japan"]},
     "messages": ["Do you ship to {country}?", "Can I order from {country}?", "Is delivery to {country} possible?"],
     "specific": ["Yes, we ship to {country}; delivery takes five to eight working days.",
                  "We deliver to {country} with tracked shipping, usually within a week, and duties are included.",
                  "Yes! Pick {country} at checkout and the shipping cost is shown before you pay."],
     "echo": ["You are asking about shipping to {country}.", "We see you are in {country}."]},
    {"id": "double-charge", "slots": {"amount": ["49 euros", "12 pounds", "30 dollars"]},
     "messages": ["I was charged {amount} twice for the same order.", "My card shows two payments of {amount} for one order.",
                  "Why did you take {amount} from my account two times?"],
     "specific": ["I have refunded the second payment of {amount}; it will show on your card in three to five days.",
                  "The duplicate {amount} was a pending hold and will drop off within two days; nothing more will be taken.",
                  "I can see the double charge of {amount} and have reversed one of them today."],
     "echo": ["You were charged {amount} twice.", "We see two payments of {amount}."]},
    {"id": "shoe-size", "slots": {"item": ["shoes", "boots", "trainers"], "size": ["40", "38", "43"]},
     "messages": ["The {item} in size {size} are too small, can I swap them?", "I need a bigger size than {size} for the {item}.",
                  "My {item} ({size}) pinch, can I exchange them?"],
     "specific": ["Of course: start a free exchange under My Orders and we will send the {item} one size up from {size}.",
                  "Yes, exchanges are free; send the size {size} {item} back and we will ship the bigger pair right away.",
                  "I have reserved the {item} in the next size up; print the return label for the {size} pair from your email."],
     "echo": ["Your {item} in size {size} are too small.", "So the {item} in {size} do not fit."]},
    {"id": "logged-out", "slots": {"place": ["website", "app", "account page"]},
     "messages": ["Your {place} keeps logging me out.", "Every few minutes the {place} signs me out.",
                  "I cannot stay logged in on the {place}."],
     "specific": ["Please clear your browser cookies and log in again; that fixes the {place} sign-outs in most cases.",
                  "Turn on Remember me when you log in; the {place} then keeps you signed in for 30 days.",
                  "We fixed a sign-out bug on the {place} today; please update and log in once more."],
     "echo": ["The {place} logs you out.", "You are being signed out of the {place}."]},
    {"id": "back-in-stock", "slots": {"item": ["red jacket", "blue scarf", "green raincoat"]},
     "messages": ["Is the {item} back in stock?", "When will the {item} be available again?", "I cannot find the {item} anymore."],
     "specific": ["The {item} is back in stock in most sizes since this morning.",
                  "The {item} returns on the 15th; tap Notify me on its page and we will email you.",
                  "The {item} is sold out for this season, but the same cut comes in navy and is in stock."],
     "echo": ["You are looking for the {item}.", "The {item} is something you want."]},
    {"id": "discount-code", "slots": {"code": ["SPRING10", "WELCOME5", "SUMMER20"]},
     "messages": ["My discount code {code} does not work.", "The code {code} is rejected at checkout.",
                  "Why can't I use {code}?"],
     "specific": ["{code} expired last week, but I have emailed you a new 10% code to use instead.",
                  "{code} only works on full-price items; remove the sale items and it will apply.",
                  "{code} is for first orders only; I have added the same discount to your account anyway."],
     "echo": ["Your code {code} does not work.", "You tried the code {code}."]},
    {"id": "cancel-subscription", "slots": {"plan": ["subscription", "monthly box", "premium plan"]},
     "messages": ["Can I cancel my {plan}?", "How do I stop my {plan}?", "I want to end the {plan} now."],
     "specific": ["Yes, cancel any time under Account, Subscriptions; the {plan} stops at the end of this month with no fee.",
                  "I have cancelled your {plan}; you will not be charged again.",
                  "Go to Account and press Cancel next to the {plan}; there is no cancellation fee."],
     "echo": ["You want to cancel your {plan}.", "We see you are asking about the {plan}."]},
    {"id": "missing-manual", "slots": {"item": ["coffee machine", "sewing machine", "printer"]},
     "messages": ["The manual for the {item} is missing.", "There was no manual in the box with my {item}.",
                  "Where can I find instructions for the {item}?"],
     "specific": ["I have emailed you the {item} manual as a PDF.",
                  "The {item} manual is under Downloads on its product page; I can post a paper copy too.",
                  "Sorry it was left out! A printed {item} manual is on its way to you."],
     "echo": ["The {item} manual is missing.", "You do not have the manual for the {item}."]},
    {"id": "broken-on-arrival", "slots": {"item": ["lamp", "vase", "mirror"]},
     "messages": ["The {item} arrived broken.", "My {item} was smashed when I opened the box.", "The {item} came cracked."],
     "specific": ["We will send a replacement {item} today at no cost; no need to return the broken one.",
                  "Please send a photo of the broken {item} and we will refund it in full straight away.",
                  "A new {item} ships tomorrow with extra packing, and you can throw the broken one away."],
     "echo": ["Your {item} arrived broken.", "So the {item} is broken."]},
    {"id": "gift-card", "slots": {"card": ["gift card", "voucher", "store credit"]},
     "messages": ["Can I pay with a {card}?", "Do you accept a {card} online?", "How do I use my {card}?"],
     "specific": ["Yes, enter the {card} number at checkout; you can pay the rest with a card.",
                  "The {card} works online and in stores: type its code in the payment step.",
                  "Yes! Add the {card} under Payment; any remaining balance stays on it for next time."],
     "echo": ["You have a {card}.", "You are asking about a {card}."]},
    {"id": "no-confirmation", "slots": {"mail": ["confirmation email", "order email", "receipt"]},
     "messages": ["I never received a {mail}.", "Where is my {mail}? Nothing arrived.", "The {mail} did not come."],
     "specific": ["I have resent the {mail}; please also check your spam folder.",
                  "Your order went through; the {mail} bounced because of a typo in the address, which I have fixed.",
                  "The {mail} is also under My Orders, where you can download it at any time."],
     "echo": ["You did not get the {mail}.", "The {mail} never arrived."]},
    {"id": "warranty", "slots": {"item": ["headphones", "speaker", "smartwatch"], "time": ["a week", "a month", "two weeks"]},
     "messages": ["The {item} stopped working after {time}.", "My {item} died after only {time}.",
                  "After {time} the {item} will not turn on."],
     "specific": ["The {item} is under warranty, so we will replace it for free; a return label is in your email.",
                  "Please hold the power button for 15 seconds to reset the {item}; if it stays dead, we replace it.",
                  "Send the {item} back with the prepaid label and we will refund or replace it, your choice."],
     "echo": ["Your {item} stopped working after {time}.", "So after {time} the {item} broke."]},
    {"id": "phone-order", "slots": {"channel": ["phone", "telephone", "the hotline"]},
     "messages": ["Can I order by {channel}?", "Is it possible to place an order by {channel}?", "I prefer to order by {channel}."],
     "specific": ["Yes! Call us on weekdays from 9 to 5 and we will take your order by {channel}.",
                  "Orders by {channel} are welcome: the number is on the Contact page and payment is taken on the call.",
                  "You can order by {channel} Monday to Saturday; have your card and address ready."],
     "echo": ["You want to order by {channel}.", "Ordering by {channel} is what you ask about."]},
    {"id": "colour-different", "slots": {"item": ["sofa", "curtains", "rug"]},
     "messages": ["The colour of the {item} looks different from the photo.", "My {item} is much darker than on your website.",
                  "The {item} is not the shade I expected."],
     "specific": ["You can return the {item} free of charge within 30 days, or swap it for another colour.",
                  "Screens show colours differently; we can send free fabric samples, or collect the {item} for a refund.",
                  "I can arrange a free collection of the {item} and a full refund, or a 20% discount if you keep it."],
     "echo": ["The {item} colour looks different.", "Your {item} is not the colour you expected."]},
    {"id": "wrong-door", "slots": {"item": ["package", "parcel", "delivery"]},
     "messages": ["The {item} was left at the wrong door.", "The courier put my {item} at my neighbour's house.",
                  "My {item} was delivered to the wrong flat."],
     "specific": ["We have asked the courier to collect the {item} and bring it to you within a day.",
                  "Please check with the neighbours; if the {item} is not found by tomorrow we will resend it free.",
                  "I have opened a claim with the courier and a replacement {item} ships today."],
     "echo": ["The {item} went to the wrong door.", "Your {item} was left somewhere else."]},
    {"id": "locked-account", "slots": {"what": ["account", "profile", "login"]},
     "messages": ["Why is my {what} locked?", "My {what} is blocked and I cannot get in.", "I am locked out of my {what}."],
     "specific": ["Your {what} locks after several wrong passwords; use the Forgot password link to unlock it.",
                  "I have unlocked your {what}; please set a new password when you log in.",
                  "The {what} unlocks by itself after 30 minutes, or right away with a password reset."],
     "echo": ["Your {what} is locked.", "You are locked out of the {what}."]},
    {"id": "before-friday", "slots": {"day": ["Friday", "the weekend", "Monday"]},
     "messages": ["Will my order arrive before {day}?", "I need my order by {day}, is that possible?",
                  "Can you deliver before {day}?"],
     "specific": ["Your order left our warehouse today and is due on Thursday, before {day}.",
                  "With express shipping, orders placed before 2 pm arrive before {day}.",
                  "Standard delivery would miss {day}, but I have upgraded you to express at no cost."],
     "echo": ["You need the order before {day}.", "You are asking about {day}."]},
    {"id": "parcel-not-here", "slots": {"where": ["home", "my door", "the mailbox"]},
     "messages": ["My parcel says delivered but it is not at {where}.", "Tracking shows delivered, yet nothing is at {where}.",
                  "The app says my parcel was delivered to {where}, but it is not there."],
     "specific": ["Please check with neighbours and around {where}; if it is not there tomorrow we will resend it.",
                  "I have opened a trace with the courier, who will call you, and we refund it if it is not found.",
                  "The courier's photo shows a different house; we are sending a new parcel today."],
     "echo": ["Your parcel is not at {where}.", "The tracking says delivered to {where}."]},
    {"id": "return-no-receipt", "slots": {"item": ["jumper", "toaster", "handbag"]},
     "messages": ["Can I return the {item} without the receipt?", "I lost the receipt for the {item}, can I still return it?",
                  "No receipt for my {item}, is a return possible?"],
     "specific": ["Yes, with your order number or the card you paid with we can find the {item} and take the return.",
                  "Receipts are not needed: the {item} is linked to your account, so start the return under My Orders.",
                  "You can return the {item} in any store; we look the purchase up by card."],
     "echo": ["You have no receipt for the {item}.", "You lost the receipt for the {item}."]},
    {"id": "app-crash", "slots": {"screen": ["basket", "checkout", "wishlist"]},
     "messages": ["The app crashes when I open my {screen}.", "Every time I tap the {screen} the app closes.",
                  "I cannot open the {screen} in the app, it crashes."],
     "specific": ["Please update the app; a fix for the {screen} crash came out today.",
                  "Until the fix is out, the {screen} works on our website with the same account.",
                  "Reinstalling the app clears the corrupt {screen} data that causes the crash."],
     "echo": ["The app crashes on the {screen}.", "Your {screen} does not open."]},
    {"id": "student-discount", "slots": {"group": ["students", "teachers", "nurses"]},
     "messages": ["Do you offer discounts for {group}?", "Is there a discount for {group}?", "Any deals for {group}?"],
     "specific": ["Yes, {group} get 10% off after verifying with their work or school email.",
                  "{group} can sign up on our Discounts page and get 15% off every order.",
                  "We do: {group} get free shipping and 10% off with a verified ID."],
     "echo": ["You are asking about discounts for {group}.", "You mention {group}."]},
    {"id": "leaking-kettle", "slots": {"item": ["kettle", "coffee maker", "water filter"]},
     "messages": ["The {item} leaks from the bottom.", "Water comes out under my {item}.", "My {item} leaves puddles on the counter."],
     "specific": ["Please stop using the {item}; we will send a replacement right away.",
                  "A leak at the base means a broken seal; return the {item} with the free label for a new one.",
                  "Unplug the {item} and send us the order number, and we will refund it in full today."],
     "echo": ["Your {item} leaks.", "Water comes out of the {item}."]},
    {"id": "wrong-colour-ordered", "slots": {"item": ["dress", "backpack", "mug"], "colour": ["green", "black", "yellow"]},
     "messages": ["I ordered the {item} in the wrong colour, can I change it to {colour}?",
                  "Can I swap my {item} for the {colour} one?", "I meant to buy the {colour} {item}."],
     "specific": ["If it has not shipped, change the {item} to {colour} under My Orders; otherwise the exchange is free.",
                  "I have changed your order to the {colour} {item}; the price is the same.",
                  "The {colour} {item} is in stock, so I have swapped it before dispatch."],
     "echo": ["You want the {item} in {colour}.", "You ordered the wrong colour of {item}."]},
    {"id": "reset-password", "slots": {"where": ["website", "app", "shop"]},
     "messages": ["How do I reset my password on the {where}?", "I forgot my password for the {where}.",
                  "Password reset on the {where} does not work."],
     "specific": ["Click Forgot password on the {where} login page and follow the link we email you.",
                  "I have sent a reset link to your email; it works for 24 hours on the {where}.",
                  "Reset links sometimes land in spam; I have sent a new one for the {where}."],
     "echo": ["You forgot your {where} password.", "You want to reset the {where} password."]},
    {"id": "wrong-item", "slots": {"got": ["a blue mug", "a size S shirt", "a phone case"], "want": ["a red mug", "a size L shirt", "a charger"]},
     "messages": ["I received {got} instead of {want}.", "You sent me {got}, but I ordered {want}.",
                  "Wrong item: {got} came, not {want}."],
     "specific": ["Sorry for the mix-up: {want} ships today and a free return label for {got} is in your email.",
                  "Keep {got} at no charge; {want} is on its way by express.",
                  "We will collect {got} tomorrow and deliver {want} at the same time."],
     "echo": ["You got {got} and not {want}.", "So {got} arrived instead of {want}."]},
    {"id": "missing-part", "slots": {"item": ["desk", "bookshelf", "bed frame"], "part": ["screws", "a leg", "the shelf pins"]},
     "messages": ["My {item} came without {part}.", "The {item} box is missing {part}.", "I cannot build the {item}, {part} are not in the box."],
     "specific": ["We will post {part} for the {item} today by first-class mail, free of charge.",
                  "{part} for the {item} can also be picked up in any store; I have sent you a voucher for them.",
                  "A spare parts kit with {part} for the {item} is on its way and should arrive in two days."],
     "echo": ["Your {item} is missing {part}.", "You have no {part} for the {item}."]},
    {"id": "price-drop", "slots": {"item": ["TV", "laptop", "coat"]},
     "messages": ["The {item} I bought last week is now cheaper.", "The price of my {item} dropped after I paid.",
                  "Can I get the difference now that the {item} is on sale?"],
     "specific": ["We match prices for 14 days, so I have refunded the difference on the {item} to your card.",
                  "Yes: send us the order number and we will refund the price drop on the {item}.",
                  "The {item} sale started within our price promise, so the difference is on its way to you."],
     "echo": ["The {item} is cheaper now.", "The price of the {item} dropped."]},
    {"id": "invoice", "slots": {"doc": ["invoice", "VAT invoice", "company invoice"]},
     "messages": ["I need an {doc} for my order.", "Where can I download the {doc}?", "Can you send me an {doc}?"],
     "specific": ["The {doc} is under My Orders, Download invoice; I have also emailed it to you.",
                  "I have sent the {doc} as a PDF; add your company details in Account if you need them on it.",
                  "You can download the {doc} from the order page once the order has shipped."],
     "echo": ["You need an {doc}.", "You asked for an {doc}."]},
    {"id": "damaged-box", "slots": {"item": ["game console", "camera", "blender"]},
     "messages": ["The box of my {item} was torn but the {item} seems fine.", "My {item} arrived in a crushed box.",
                  "The packaging of the {item} is damaged, is the {item} ok?"],
     "specific": ["If the {item} works, you can keep it; the warranty is still valid despite the torn box.",
                  "Please test the {item}; if anything is wrong within 30 days we replace it, box or no box.",
                  "Take a photo of the crushed box in case the {item} shows a fault later; your warranty is unaffected."],
     "echo": ["The box of your {item} is damaged.", "Your {item} came in a torn box."]},
    {"id": "loyalty-points", "slots": {"points": ["points", "reward points", "stars"]},
     "messages": ["My {points} from the last order are missing.", "I did not get {points} for my purchase.",
                  "Where are my {points}?"],
     "specific": ["{points} appear 14 days after delivery, once the return period ends; yours are due on Monday.",
                  "I have added the missing {points} to your account by hand.",
                  "{points} are not given on sale items, but I have added them this once."],
     "echo": ["Your {points} are missing.", "You did not get your {points}."]},
]


def fill(template: str, values: dict[str, str]) -> str:
    text = template.format(**values)
    return text[0].upper() + text[1:]


def reply(body: str, rng: random.Random) -> str:
    return " ".join(part for part in (rng.choice(OPENINGS), body, rng.choice(CLOSINGS)) if part)


def rows_for(scenario: dict, others: list[dict], rng: random.Random) -> list[dict]:
    """Per message: two specific replies (pass), one generic, one for another scenario, maybe one echo."""
    rows = []
    names = list(scenario["slots"])
    for number, message in enumerate(scenario["messages"]):
        values = {name: rng.choice(scenario["slots"][name]) for name in names}
        prompt = fill(message, values)
        answers = [(fill(body, values), 1, "specific")
                   for body in rng.sample(scenario["specific"], 2)]
        answers.append((rng.choice(GENERIC), 0, "generic"))
        other = rng.choice(others)
        other_values = {name: rng.choice(other["slots"][name]) for name in other["slots"]}
        answers.append((fill(rng.choice(other["specific"]), other_values), 0, "other-problem"))
        if rng.random() < 0.5:
            answers.append((fill(rng.choice(scenario["echo"]), values), 0, "echo"))
        for index, (body, score, kind) in enumerate(answers):
            rows.append({"id": f"{scenario['id']}-{number}-{index}-{kind}", "prompt": prompt,
                         "answer": reply(body, rng), "score": score, "category": scenario["id"]})
    return rows


def build() -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    ids = [scenario["id"] for scenario in SCENARIOS]
    held = set(rng.sample(ids, round(len(ids) * HELD_OUT_SHARE)))
    train_scenarios = [s for s in SCENARIOS if s["id"] not in held]
    held_scenarios = [s for s in SCENARIOS if s["id"] in held]
    train: list[dict] = []
    held_out: list[dict] = []
    for scenario in SCENARIOS:
        # "another scenario's reply" comes from the same side, so no held-out text enters training
        pool = held_scenarios if scenario["id"] in held else train_scenarios
        others = [other for other in pool if other["id"] != scenario["id"]]
        (held_out if scenario["id"] in held else train).extend(rows_for(scenario, others, rng))
    return train, held_out


def write(folder: Path) -> None:
    train, held_out = build()
    for name, rows in (("train.jsonl", train), ("held_out.jsonl", held_out)):
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (folder / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
