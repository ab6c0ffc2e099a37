"""The embedded default corpus: synthetic student essays in the Kaggle Feedback Prize layout.

Essays follow the real structure (optional Lead, a Position early, Claims mostly followed by Evidence, occasional
Counterclaim + Rebuttal, a Concluding Statement) over 15 prompts with their own vocabulary, with the real class
frequencies and a long-tailed length distribution. Cue phrases make the classes learnable; template variants,
missing or misplaced cues, unmarked Claim/Evidence boundaries, unannotated text, typos and imperfect offsets keep
them from being trivial. ``predictionstring`` is always derived from the offsets by the competition's rule.

CLI: ``python -m feedback_ner.sample --out DIR --n N --seed S [--n-test T]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from feedback_ner.labels import CLASSES, offsets_to_word_indices, to_predictionstring

logger = logging.getLogger("feedback_ner.sample")

# Element counts of the real train set (15,594 essays, 144,293 elements).
REAL_CLASS_COUNTS: dict[str, int] = {
    "Claim": 50208,
    "Evidence": 45702,
    "Position": 15419,
    "Concluding Statement": 13505,
    "Lead": 9305,
    "Counterclaim": 5817,
    "Rebuttal": 4337,
}
REAL_ESSAYS = 15594
TOKENS_PER_WORD = 1.3  # RoBERTa/Longformer BPE on student essays
LONG_TOKENS = 1024
MIN_WORDS = 150
LONGEST_WORDS = 2000  # corpora of LONGEST_FROM essays or more contain one essay at least this long
LONGEST_FROM = 200

TRAIN_COLUMNS = (
    "id",
    "discourse_id",
    "discourse_start",
    "discourse_end",
    "discourse_text",
    "discourse_type",
    "discourse_type_num",
    "predictionstring",
)


@dataclass(frozen=True)
class Prompt:
    """One essay prompt and the vocabulary its essays draw on (clauses start lowercase, no final period)."""

    name: str
    weight: float  # share of essays, roughly as in the real set
    titles: tuple[str, ...]
    greetings: tuple[str, ...]  # letter-style prompts open with one of these
    topic: tuple[str, ...]
    people: tuple[str, ...]
    nouns: tuple[str, ...]
    actions: tuple[str, ...]  # verb phrases, base form
    sources: tuple[str, ...]
    pro: tuple[str, ...]  # stance clauses for each side
    con: tuple[str, ...]
    pro_reasons: tuple[str, ...]
    con_reasons: tuple[str, ...]
    facts: tuple[str, ...]


def _prompt(name: str, weight: float, **fields: str) -> Prompt:
    return Prompt(name, weight, **{k: tuple(v.split("|")) if v else () for k, v in fields.items()})


PROMPTS: tuple[Prompt, ...] = (
    _prompt(
        "Car-free cities", 1.25,
        titles="Car-free Cities|Limiting Car Usage|Cars",
        greetings="",
        topic="limiting car usage|car-free cities|driving less|reducing car use|a world with fewer cars",
        people="citizens|drivers|families|commuters|people in cities",
        nouns="cars|smog|pollution|buses|bikes|greenhouse gases|traffic|parking spaces",
        actions="ride a bike to work|take the bus|walk to the store|leave the car at home|carpool with friends"
        "|use public transportation",
        sources="the article|the passage|Elisabeth Rosenthal|the author|\"Car-free Cities\"",
        pro="limiting car usage is good for everyone|cities should limit car usage|people should drive less"
        "|car-free days are a great idea|we should cut down on car use",
        con="people should still be allowed to drive|limiting car usage is not realistic"
        "|cars are still necessary for most people|car-free cities would not work everywhere",
        pro_reasons="it reduces air pollution|people become less stressed|it saves families a lot of money"
        "|it makes the streets safer|it cuts down greenhouse gas emissions|people get more exercise"
        "|the traffic jams would go away|neighborhoods become quieter and friendlier",
        con_reasons="many people need cars to get to work|buses are slow and crowded"
        "|some people live too far from the city|cars are faster than walking or biking"
        "|the weather is not always good for biking|car companies provide a lot of jobs",
        facts="in Vauban, Germany, seventy percent of families do not own cars"
        "|Paris banned driving for a few days because of the smog"
        "|passenger cars are responsible for twelve percent of greenhouse gas emissions in Europe"
        "|in Bogota, millions of people hiked, biked or took buses during the car-free day"
        "|the smog in Paris rivaled Beijing, one of the most polluted cities in the world"
        "|fifty-seven percent of families in Vauban sold a car to move there"
        "|car ownership in the United States has been going down since 2005"
        "|drivers in Paris were fined twenty-two euros if they drove on the wrong day",
    ),
    _prompt(
        "Does the electoral college work?", 1.1,
        titles="The Electoral College|Popular Vote|Keep the Electoral College",
        greetings="Dear State Senator,|Dear Senator,|Dear Senator PROPER_NAME,",
        topic="the Electoral College|the popular vote|the way we elect the president"
        "|changing the election to the popular vote",
        people="voters|citizens|candidates|electors|Americans",
        nouns="votes|elections|electors|swing states|the president|the popular vote|the ballot",
        actions="vote for the president|choose their electors|campaign in every state|count every vote"
        "|go to the polls",
        sources="the article|Bradford Plumer|Richard Posner|the Office of the Federal Register"
        "|\"The Indefensible Electoral College\"",
        pro="we should keep the Electoral College|the Electoral College should stay"
        "|the Electoral College is the best way to elect a president",
        con="we should change to election by popular vote|the Electoral College should be abolished"
        "|the president should be elected by the popular vote|the Electoral College is outdated and unfair",
        pro_reasons="it avoids runoff elections|it gives big states balance"
        "|it requires a candidate to have trans-regional appeal|it makes the outcome of the election certain"
        "|swing states get the attention of the candidates|it has worked for over two hundred years",
        con_reasons="the popular vote is more fair|voters do not choose the president directly"
        "|some votes count more than others|candidates ignore states that are not swing states"
        "|electors can vote against the will of the people|a candidate can win the popular vote and still lose",
        facts="in 2000, Al Gore won the popular vote but lost the presidency"
        "|the Electoral College consists of 538 electors"
        "|a majority of 270 electoral votes is required to elect the president"
        "|in 1960, segregationists in Louisiana nearly replaced the Democratic electors"
        "|over sixty percent of voters would prefer a direct election"
        "|most states have a winner-take-all system"
        "|in 1968, a shift of just 41,971 votes would have deadlocked the election"
        "|Nixon in 1968 and Clinton in 1992 both won with only 43 percent of the popular vote",
    ),
    _prompt(
        "The Face on Mars", 0.9,
        titles="The Face on Mars|Unmasking the Face|Natural Landform",
        greetings="",
        topic="the Face on Mars|the landform on Mars|the idea that aliens made the Face"
        "|the Face in the Cydonia region",
        people="scientists|NASA researchers|conspiracy theorists|people on Earth|astronomers",
        nouns="the Face|aliens|shadows|a mesa|a butte|the photo|the Mars Global Surveyor|the Viking 1 spacecraft",
        actions="take a closer look at the photos|believe in aliens|study the landform|look at the evidence"
        "|trust the scientists",
        sources="the article|\"Unmasking the Face on Mars\"|NASA|the author|the passage",
        pro="the Face is just a natural landform|the Face on Mars was not created by aliens"
        "|the Face is a mesa and nothing more|there were no aliens on Mars",
        con="aliens created the Face on Mars|the Face could be an alien monument"
        "|NASA is hiding the truth about the Face",
        pro_reasons="the high resolution photos show no alien monument"
        "|shadows made the landform look like a face|there are similar landforms on Earth"
        "|NASA has no reason to hide anything|the Face is just a mesa or a butte|scientists have studied it many times",
        con_reasons="it looks too much like a human face|NASA could be hiding evidence"
        "|there might have been life on Mars long ago|the first photo clearly showed eyes, a nose and a mouth"
        "|the conspiracy theorists have good points",
        facts="the Viking 1 spacecraft took the first picture of the Face in 1976"
        "|in 2001, the Mars Global Surveyor took a picture three times sharper than the original"
        "|the picture showed the Martian equivalent of a butte or mesa"
        "|the camera had a resolution of 1.56 meters per pixel"
        "|the Face is similar to the Middle Butte in the Snake River Plain of Idaho"
        "|the original photo had a resolution of 43 meters per pixel"
        "|the Face became a pop icon and starred in a Hollywood film",
    ),
    _prompt(
        "Facial action coding system", 0.95,
        titles="Facial Action Coding System|Making Mona Lisa Smile|Reading Emotions",
        greetings="",
        topic="the Facial Action Coding System|facial recognition in classrooms|using FACS technology in schools"
        "|computers that read emotions",
        people="students|teachers|classmates|kids|software developers",
        nouns="the software|emotions|facial muscles|the computer|the classroom|the lesson|expressions",
        actions="read the emotions of students|adjust the lesson|pay attention in class|show their feelings"
        "|use the computer",
        sources="the article|\"Making Mona Lisa Smile\"|Dr. Huang|the author|the passage",
        pro="the Facial Action Coding System is valuable in classrooms"
        "|using this technology to read the emotions of students is a good idea|schools should use FACS software"
        "|this technology would help students learn",
        con="using this technology in classrooms is not valuable|schools should not use FACS software"
        "|computers should not read the emotions of students|this technology is an invasion of privacy",
        pro_reasons="it can tell when a student is bored or confused|teachers could adjust their lessons"
        "|it can help students who hide their feelings|it can make learning more fun"
        "|it could help detect if a student is sad or depressed|it can improve video games and video surgery",
        con_reasons="it is an invasion of privacy|the technology could make mistakes"
        "|students should be able to keep their feelings to themselves|teachers can already see how students feel"
        "|it would be very expensive for schools|it could make students nervous",
        facts="the software can tell that Mona Lisa was eighty-three percent happy"
        "|the computer constructs a 3-D model of the face with all 44 major muscles"
        "|Dr. Huang says a classroom computer could recognize when a student is becoming confused or bored"
        "|Mona Lisa was also nine percent disgusted, six percent fearful and two percent angry"
        "|each expression is compared against a neutral face"
        "|the technology was developed by Dr. Huang and his colleague at the University of Amsterdam",
    ),
    _prompt(
        "Driverless cars", 0.9,
        titles="Driverless Cars|Self-Driving Cars|The Future of Cars",
        greetings="",
        topic="driverless cars|self-driving cars|the development of driverless cars|cars that drive themselves",
        people="drivers|passengers|car companies|engineers|pedestrians",
        nouns="sensors|the car|accidents|the road|the steering wheel|Google|traffic|the driver",
        actions="take over the wheel|pay attention to the road|text while the car drives|trust the technology"
        "|sleep in the car",
        sources="the article|\"Driverless Cars Are Coming\"|the author|the passage|Google",
        pro="driverless cars should be developed|driverless cars are a great idea"
        "|self-driving cars would make our lives better|we should support the development of driverless cars",
        con="driverless cars should not be developed|driverless cars are too dangerous"
        "|self-driving cars are not a good idea|people should keep driving their own cars",
        pro_reasons="they could reduce the number of accidents|they would use less fuel"
        "|people could relax on long trips|they would help people who cannot drive"
        "|the sensors react faster than humans|they would make traffic flow better",
        con_reasons="the technology can fail at any time|nobody knows who is responsible in a crash"
        "|the driver still has to pay attention|they will cost too much money"
        "|hackers could take control of the car|many truck and taxi drivers would lose their jobs",
        facts="Google cars have driven more than half a million miles without a crash"
        "|the cars still need a human driver to take over in construction zones and around accidents"
        "|BMW announced a car that can drive itself up to 25 miles per hour"
        "|the car uses a spinning sensor on the roof called LIDAR"
        "|in most states it is illegal to test computer-driven cars"
        "|Tesla planned to release a car that can drive itself ninety percent of the time",
    ),
    _prompt(
        "Exploring Venus", 0.95,
        titles="Exploring Venus|The Challenge of Exploring Venus|Venus",
        greetings="",
        topic="exploring Venus|studying Venus|sending humans to Venus|the exploration of Venus",
        people="scientists|astronauts|researchers|NASA engineers|humans",
        nouns="the planet|the atmosphere|the surface|the clouds|spacecraft|the heat|the pressure"
        "|a blimp-like vehicle",
        actions="study the planet|send a probe|hover above the clouds|land on the surface"
        "|take samples of the rocks",
        sources="the article|\"The Challenge of Exploring Venus\"|the author|NASA|the passage",
        pro="studying Venus is a worthy pursuit despite the dangers|we should keep exploring Venus"
        "|exploring Venus is worth the risk|scientists should continue to study Venus",
        con="exploring Venus is too dangerous|we should not send anyone to Venus"
        "|studying Venus is not worth the risk|the dangers of Venus are too great",
        pro_reasons="Venus may have once been like Earth|it is the closest planet to Earth"
        "|new technology can survive the conditions|we could learn a lot about our own planet"
        "|humans are curious and should explore|mechanical computers can handle the heat",
        con_reasons="the temperature is over eight hundred degrees"
        "|the atmosphere is ninety-seven percent carbon dioxide"
        "|no spacecraft has survived more than a few hours|the pressure would crush a submarine"
        "|it costs too much money|there are better planets to explore like Mars",
        facts="no spacecraft has touched down on Venus in more than three decades"
        "|the temperatures average over 800 degrees Fahrenheit"
        "|the atmospheric pressure is ninety times greater than on Earth"
        "|NASA wants to send a blimp-like vehicle to hover thirty miles above the surface"
        "|Venus was probably covered with oceans long ago|Venus is sometimes called the Evening Star"
        "|clouds of highly corrosive sulfuric acid cover the planet",
    ),
    _prompt(
        "Phones and driving", 0.6,
        titles="Phones and Driving|Texting and Driving|Put the Phone Down",
        greetings="",
        topic="using phones while driving|texting and driving|phones in cars|distracted driving",
        people="drivers|teenagers|new drivers|police officers|passengers",
        nouns="phones|texts|accidents|the road|hands-free devices|the law|notifications",
        actions="text while driving|put the phone away|pull over to answer a call|use a hands-free device"
        "|keep their eyes on the road",
        sources="the article|a study|the news|my driving instructor|the police",
        pro="drivers should not be able to use phones while driving|phones should be banned while driving"
        "|texting and driving should be illegal|using a phone while driving is dangerous",
        con="drivers should be able to use their phones in some cases|phones can be used safely while driving"
        "|a total ban on phones is not realistic",
        pro_reasons="it takes your eyes off the road|it causes thousands of accidents every year"
        "|you can wait until you stop|one text can change your life forever"
        "|your reaction time gets much slower|it puts other people in danger",
        con_reasons="GPS apps help drivers find their way|people may need to call for help in an emergency"
        "|hands-free devices are safe|some calls are very important|the law is hard to enforce",
        facts="texting while driving makes a crash twenty-three times more likely"
        "|about nine people are killed every day in crashes involving a distracted driver"
        "|sending a text takes your eyes off the road for about five seconds"
        "|at fifty-five miles per hour, five seconds is like driving the length of a football field blindfolded"
        "|forty-seven states have banned texting while driving"
        "|one in four car accidents in the United States is caused by texting",
    ),
    _prompt(
        "Community service", 0.75,
        titles="Community Service|Helping Others|Volunteering",
        greetings="Dear Principal,|Dear TEACHER_NAME,|Dear Principal Generic_Name,",
        topic="community service|mandatory community service|requiring students to do community service"
        "|volunteering",
        people="students|volunteers|young people|kids|neighbors",
        nouns="the community|the park|the homeless shelter|the library|volunteering|free time|the neighborhood",
        actions="help their community|volunteer at a shelter|pick up trash in the park|tutor younger kids"
        "|help elderly neighbors",
        sources="the principal|my teacher|the school|a survey|my counselor",
        pro="students should be required to perform community service|community service should be mandatory"
        "|every student should do community service|community service is good for students",
        con="students should not be required to do community service|community service should be optional"
        "|forcing students to volunteer is a bad idea",
        pro_reasons="it teaches students responsibility|it helps people in need|students can learn new skills"
        "|it looks good on college applications|it brings the community together|students make new friends",
        con_reasons="students are already too busy with homework|some students have jobs after school"
        "|volunteering should come from the heart|students need time to rest"
        "|some students do not have a ride|it would not be real volunteering if it is forced",
        facts="last summer my class picked up over fifty bags of trash at the park"
        "|many colleges look for volunteer hours on applications"
        "|students who volunteer are more likely to vote when they grow up"
        "|the local shelter needs more volunteers every winter"
        "|some schools require forty hours of service to graduate"
        "|my cousin tutored kids at the library every Saturday",
    ),
    _prompt(
        "Mandatory extracurricular activities", 0.75,
        titles="Extracurricular Activities|After School Activities|Should Activities Be Required",
        greetings="Dear Principal,|Dear Principal Generic_Name,",
        topic="extracurricular activities|mandatory extracurricular activities"
        "|requiring students to join an activity|after-school activities",
        people="students|athletes|teachers|coaches|parents",
        nouns="sports|clubs|the yearbook|the student council|practice|after-school activities|the team",
        actions="join a sports team|participate in a club|work on the yearbook|serve on the student council"
        "|stay after school",
        sources="the principal|my coach|the school|my teacher|a study",
        pro="students should be required to participate in at least one extracurricular activity"
        "|extracurricular activities should be mandatory|the principal is right to require an activity",
        con="students should not be forced to participate in extracurricular activities"
        "|extracurricular activities should be a choice|the principal should not require an activity",
        pro_reasons="students make new friends|it keeps kids out of trouble|it teaches teamwork and leadership"
        "|it helps students stay healthy|students discover new interests|it looks good for college",
        con_reasons="some students have jobs or family duties|students already have too much homework"
        "|not everyone likes sports or clubs|it takes away free time|some activities cost a lot of money"
        "|students would not enjoy something they are forced to do",
        facts="students who play sports tend to have better grades"
        "|my friend joined the robotics club and now wants to be an engineer"
        "|the soccer team practices three days a week for two hours"
        "|the student council plans the dances and fundraisers"
        "|studies show that kids in clubs are less likely to drop out"
        "|last year the yearbook club had only five members",
    ),
    _prompt(
        "Summer projects", 1.0,
        titles="Summer Projects|Student-Designed Projects|Summer Learning",
        greetings="",
        topic="summer projects|student-designed summer projects|teacher-designed projects|learning over the summer",
        people="students|teachers|kids|parents|classmates",
        nouns="the project|summer break|the topic|creativity|the assignment|the deadline",
        actions="pick their own topic|learn over the summer|work on the project|read a book over the break"
        "|do research",
        sources="the school|my teacher|the principal|a study",
        pro="summer projects should be student-designed|students should design their own summer projects"
        "|students should choose their own project",
        con="summer projects should be teacher-designed|teachers should design the summer projects"
        "|teachers should choose the project",
        pro_reasons="students would be more interested|it lets students be creative"
        "|students know what they like best|students learn to manage their time"
        "|they would actually finish the project",
        con_reasons="teachers know what students need to learn|students might choose something too easy"
        "|teachers can make sure everyone learns the same thing|students might procrastinate"
        "|teachers can grade it more fairly",
        facts="students forget a lot of what they learned during the summer"
        "|my sister did a project about ocean animals and learned a lot"
        "|some schools give students a list of ideas to choose from"
        "|about two months of learning can be lost over the summer"
        "|last summer I built a model of the solar system for a project",
    ),
    _prompt(
        "Distance learning", 1.35,
        titles="Distance Learning|Online School|Learning From Home",
        greetings="",
        topic="distance learning|online classes|attending classes from home|video conferencing for school",
        people="students|teachers|parents|classmates|kids",
        nouns="the computer|online classes|the internet|video calls|homework|the classroom|the schedule",
        actions="attend classes from home|learn at their own pace|work online|log in to class"
        "|ask the teacher questions",
        sources="a study|my teacher|the article|the school district|the news",
        pro="students would benefit from attending classes from home|distance learning is a good option"
        "|online classes are beneficial for students",
        con="students would not benefit from attending classes from home|distance learning is not a good idea"
        "|students learn better in a real classroom",
        pro_reasons="students can learn at their own pace|it helps students who are sick|students avoid bullying"
        "|it saves time on traveling|it prepares them for online jobs",
        con_reasons="students would miss out on social time|it is easy to get distracted at home"
        "|some students do not have internet|teachers cannot help students as easily|students lose motivation",
        facts="during the pandemic many schools moved all classes online"
        "|many students said they felt lonely during online school"
        "|some students do not have a reliable internet connection at home"
        "|my brother took an online math class and finished it in two months"
        "|a survey showed that most students preferred to see their friends at school",
    ),
    _prompt(
        "Seeking multiple opinions", 1.05,
        titles="Seeking Multiple Opinions|Asking for Advice|Advice",
        greetings="",
        topic="seeking multiple opinions|asking more than one person for advice"
        "|getting advice from different people",
        people="friends|parents|teachers|people|counselors",
        nouns="advice|opinions|a decision|choices|different perspectives|mistakes",
        actions="ask for advice|talk to more than one person|hear different perspectives|make a better decision"
        "|listen to others",
        sources="my mom|my teacher|my best friend|a counselor|my coach",
        pro="seeking multiple opinions can help someone make a better choice"
        "|asking more than one person for advice is a good idea"
        "|people should get advice from more than one person",
        con="asking too many people for advice can be confusing|people should make their own decisions"
        "|seeking multiple opinions is not always helpful",
        pro_reasons="you can hear different perspectives|other people may have gone through the same thing"
        "|you can avoid making mistakes|it helps you see the pros and cons|it helps you feel more confident",
        con_reasons="too many opinions can confuse you|it takes a lot of time|some people give bad advice"
        "|you know yourself best|you might end up doing what others want",
        facts="when I had to choose a high school, I asked my parents, my teacher and my best friend"
        "|my older sister asked three people before she bought her first car"
        "|my friend Generic_Name only listened to one person and regretted it"
        "|studies show that groups make better decisions than individuals"
        "|my dad always asks my grandpa before he makes a big choice",
    ),
    _prompt(
        "A Cowboy Who Rode the Waves", 0.55,
        titles="A Cowboy Who Rode the Waves|Seagoing Cowboys|Join the Program",
        greetings="",
        topic="the Seagoing Cowboys program|joining the Seagoing Cowboys|Luke's adventure|the program",
        people="young people|cowboys|farmers|sailors|volunteers",
        nouns="the ship|the animals|the horses|the ocean|Europe|the cattle-boat|the trip",
        actions="take care of the animals|travel across the ocean|help other countries|see the world"
        "|join the program",
        sources="the article|the story|Luke|the author|\"A Cowboy Who Rode the Waves\"",
        pro="people should join the Seagoing Cowboys program|the Seagoing Cowboys program is a great opportunity"
        "|you should participate in the program",
        con="the Seagoing Cowboys program is too dangerous for some people|not everyone should join the program"
        "|the program is not for everyone",
        pro_reasons="you can see many places around the world|you get to help people in need"
        "|it is an adventure you will never forget|you can learn about other cultures"
        "|you will have fun on the ship",
        con_reasons="the work on the ship is very hard|the trip can be dangerous"
        "|you have to leave your family for a long time|some people get seasick|you do not get paid much",
        facts="Luke crossed the Atlantic Ocean nine times as a Seagoing Cowboy|Luke got to see Europe and China"
        "|the animals had to be fed and watered two or three times a day"
        "|Luke slipped on a wet ladder and cracked his ribs"
        "|the cowboys played baseball and volleyball in the empty holds"
        "|after World War II, many countries needed food supplies and animals"
        "|it took about two weeks to cross the Atlantic",
    ),
    _prompt(
        "Cell phones at school", 0.6,
        titles="Cell Phones at School|Phone Policy|Phones in School",
        greetings="Dear Principal,|Dear Principal Generic_Name,",
        topic="cell phones at school|the phone policy|using phones during lunch|phones in class",
        people="students|teachers|parents|kids|the principal",
        nouns="phones|the policy|lunch|free time|class|text messages|emergencies",
        actions="use their phones during lunch|text their parents|check their messages"
        "|turn their phones off in class|call home",
        sources="the principal|my teacher|the school|a survey",
        pro="students should be allowed to use phones during lunch and free periods|Policy 1 is the better choice"
        "|phones should be allowed at school",
        con="students should not have phones at school|Policy 2 is the better choice"
        "|phones should not be allowed at school at all",
        pro_reasons="students can contact their parents in an emergency|students would be happier"
        "|it would teach them responsibility|students would stop sneaking phones in class"
        "|they can check their schedule",
        con_reasons="phones distract students from learning|students might cheat on tests"
        "|phones can lead to cyberbullying|students would not talk to each other at lunch|they could be stolen",
        facts="most students already text in class when the teacher is not looking"
        "|my friend got her phone taken away for texting in class"
        "|a survey showed that over ninety percent of students own a phone"
        "|some schools let students use phones only at lunch"
        "|my mom always texts me after school to tell me where to meet",
    ),
    _prompt(
        "Grades for extracurricular activities", 0.55,
        titles="Grades and Sports|The B Average Policy|Sports and Grades",
        greetings="Dear Principal,|Dear TEACHER_NAME,",
        topic="the grade B policy|requiring a B average for sports|the new grade policy"
        "|extracurricular grade requirements",
        people="students|athletes|coaches|teachers|parents",
        nouns="grades|sports|the team|the policy|a C average|report cards",
        actions="play sports|keep their grades up|study harder|join a team|get a tutor",
        sources="the principal|my coach|the school board|my teacher",
        pro="students should have at least a B average to participate in sports|the new policy is a good idea"
        "|the principal should change the policy to a B average",
        con="students should not need a B average to play sports|the policy should stay at a C average"
        "|the new policy is unfair",
        pro_reasons="students would work harder in school|education is more important than sports"
        "|it would raise the grades of the whole school|students would learn to manage their time",
        con_reasons="many students would be kicked off the team|sports keep kids out of trouble"
        "|some students try hard and still get Cs|sports can be the reason some students come to school"
        "|it would hurt the teams",
        facts="most students at my school have a C average"
        "|my friend raised his grades so he could stay on the basketball team"
        "|the football team would lose half its players|some students only come to school to play sports"
        "|many colleges give scholarships for sports",
    ),
)

# ---- sentence templates per class; {slot}s are drawn from the prompt (capitalised name: capitalised value) ----
_LEAD_OPEN = (
    "have you ever wondered what it would be like if {people} could {action}?",
    "imagine a world where {people} {action} every day.",
    "did you know that {fact}?",
    "every day, {people} {action} without thinking about it.",
    "{topic} has been a big debate for a long time.",
    "many people have different opinions about {topic}.",
    "what would happen if {people} decided to {action}?",
    "in today's society, {topic} is something that affects almost everyone.",
    "when most people think about {topic}, they do not think about what it really means.",
    "over the past few years, {topic} has become more and more common.",
    "there are many {people} who {action}, and there are many who do not.",
    "picture this: you are one of the {people} and you have to {action}.",
    "{topic} is a topic that a lot of {people} talk about these days.",
    "not many people know that {fact}.",
)
_LEAD_MORE = (
    "some {people} think it is a great idea, while others think it is a waste of time.",
    "this is an important question for {people} everywhere.",
    "in {source}, the author talks about {topic}.",
    "it is a question that a lot of {people} ask.",
    "{topic} is discussed in many places, from school to the news.",
    "some say {stance}, and others say {ostance}.",
    "it can change the way {people} {action}.",
    "many {people} still do not know much about {noun}.",
    "the question is whether {topic} is a good thing or not.",
    "{people} have been talking about {noun} for years.", "it is not an easy question to answer.",
    "everyone has their own opinion about it.", "some people have never even heard of {topic}.",
)
_POSITION = (
    "I think that {stance}.", "I believe {stance}.", "in my opinion, {stance}.", "I strongly believe that {stance}.",
    "I agree that {stance}.", "my position is that {stance}.", "{stance}.", "I feel like {stance}.",
    "it is clear that {stance}.", "from my point of view, {stance}.", "I would argue that {stance}.",
    "this is why I think {stance}.", "{stance}, and I will explain why.", "I personally think {stance}.",
    "{stance} for many reasons.", "I am for the idea that {stance}.", "my opinion is that {stance}.",
)
_POSITION_CUED = tuple(t for t in _POSITION if t.endswith(" {stance}."))
_CLAIM_FIRST = ("first,", "first of all,", "to begin with,", "one reason is that", "the first reason is that",
                "the main reason is that", "firstly,", "to start off,")
_CLAIM_NEXT = ("secondly,", "second,", "another reason is that", "also,", "in addition,", "furthermore,",
               "another thing is that", "not only that, but", "moreover,", "on top of that,", "next,", "plus,")
_CLAIM_LAST = ("lastly,", "finally,", "the last reason is that", "last but not least,", "my final reason is that")
_CLAIM_BODY = (
    "{reason}.", "{reason}.", "{reason}.", "I think {reason}.", "{reason}, which is very important.",
    "{reason} and that matters.", "{reason}, and that is important.", "{reason} for {people}.",
    "it is true that {reason}.", "{reason}, so it helps a lot.",
)
_EVIDENCE_OPEN = (
    "for example, {fact}.", "for instance, {fact}.", "according to {source}, {fact}.", "{source} states that {fact}.",
    "in {source} it says that {fact}.", "the text says \"{fact}\" (paragraph {par}).", "studies show that {fact}.",
    "{fact}.", "{fact}.", "as stated in {source}, {fact}.", "one example is that {fact}.",
    "{source} explains that {fact}.", "this is shown when {fact}.", "my {rel} once told me that {reason}.",
    "I remember when my {rel} had to {action}, and it was not easy.", "if {people} {action}, {reason}.",
    "think about it, {reason}.",
)
_EVIDENCE_MORE = (
    "this shows that {reason}.", "this means that {people} can {action}.", "if {people} {action}, {reason}.",
    "that is a huge difference for {people}.", "this is important because {reason}.",
    "without {noun}, {people} would have a harder time.", "{people} would be able to {action} more often.",
    "because of this, {reason}.", "not only that, but {fact}.", "it also says that {fact}.",
    "this proves that {stance}.", "my {rel} says that {reason}, and I agree.",
    "everyone knows that {noun} can be a problem for {people}.", "the author also mentions that {fact}.",
    "some {people} have said that {reason}.", "there are {num} percent more {people} who {action} now.",
    "so {people} should {action}.", "that is why {reason}.", "when {people} {action}, things get better.",
    "{noun} is a big part of this.", "you can see that {reason}.", "it is not hard to see why.",
    "a lot of {people} do not think about {noun} at all.", "in {source}, it says {fact}.",
    "this would make a big difference in the lives of {people}.", "it is something that {people} deal with a lot.",
    "this is a good example of why {stance}.", "for example, {people} {action} all the time.",
    "{people} need to {action} if they want things to change.", "I know this because my {rel} told me.",
    "also, {fact}.", "in other words, {reason}.", "this happens to {people} every day.",
)
_COUNTER = (
    "some people say that {counter}.", "some may argue that {counter}.", "others believe that {ostance}.",
    "people who disagree might say that {counter}.", "it is true that {counter}.",
    "many people think {ostance} because {counter}.", "of course, {counter}.", "{counter}.",
    "opponents say that {counter}.", "some {people} might say {ostance}.", "I know that {counter}.",
    "a lot of people think that {counter}.", "however, some people say that {counter}.",
)
_REBUTTAL = (
    "however, {reason}.", "but {reason}.", "that may be true, but {reason}.",
    "however, this is not always the case, because {reason}.", "even so, {stance}.",
    "what they do not realize is that {reason}.", "on the other hand, {reason}.", "this is wrong because {reason}.",
    "{reason}.", "while that may be so, {reason}.", "but if you think about it, {reason}.",
    "but that is not a good reason, because {reason}.",
)
_COUNTER_MORE = (
    "they think that {counter}.", "this is why some {people} do not like {topic}.", "they say {ostance}.",
    "to them, {counter}.", "some {people} also worry that {counter}.", "they have a point.",
    "I can see why they would think that.", "in {source}, some {people} say {counter}.",
    "this is a common opinion among {people}.", "they believe {noun} is the real problem.",
)
# the main clause after "Although <counterclaim>,"
_REBUTTAL_CLAUSE = ("{reason}.", "{stance}.", "I still think {stance}.", "{reason} anyway.",
                    "{people} should know that {reason}.")
_CONCLUDE = (
    "in conclusion, {stance}.", "in conclusion, {stance} because {reason} and {reason2}.", "to sum it up, {stance}.",
    "overall, {stance}.", "all in all, {stance}.", "in summary, {stance}.", "to conclude, {stance}.",
    "that is why {stance}.", "those are the reasons why {stance}.", "so, {stance}.", "{stance}.",
    "in conclusion, {reason} and {reason2}, so {stance}.", "in the end, {stance}.",
    "in conclusion, I think {stance}.",
)
_CONCLUDE_MORE = (
    "{topic} can make a big difference for {people}.", "{people} should think about this before they decide.",
    "I hope {people} will agree with me.", "if {people} {action}, everyone wins.",
    "it is time for {people} to {action}.", "{reason}, and {reason2}.", "this is what I believe.",
    "we need to think about the future of {noun}.", "there are many reasons why {stance}.",
    "as I said before, {reason}.", "{people} need to understand that {reason}.", "the evidence shows that {reason}.",
    "I believe that {people} will see this too.", "after all, {reason}.", "{source} makes this very clear.",
    "that is my opinion on {topic}.", "this is something {people} should not forget.",
)
_FILLER = (
    "here is why.", "let me explain.", "there are many reasons for this.", "I will explain my reasons below.",
    "this is my first reason.", "that is my next reason.", "I think this is a very interesting topic.",
    "I have never really thought about this before.", "the question is whether {topic} is a good idea or not.",
    "for example, there are a lot of things to think about.", "that is just what I think.",
    "there are two sides to this.", "this is a hard question.", "I will tell you why.",
    "some of my friends agree with me.",
)
_CLOSING = ("Sincerely, {name}", "Thank you for reading.", "Thank you for your time.", "From, {name}",
            "Sincerely,\n{name}")
_RELATIVES = ("mom", "dad", "older brother", "sister", "friend", "best friend", "uncle", "aunt", "grandma", "cousin",
              "neighbor", "teacher", "coach", "friend Generic_Name")
_NAMES = ("Generic_Name", "STUDENT_NAME", "PROPER_NAME", "Generic_Name Generic_Name")
_GLUE_CLAIM_EVIDENCE = (", ", " because ", " so ", ", for example ", " and ", " - ")
_MISSPELL = {
    "because": "becuase", "their": "there", "believe": "belive", "people": "poeple", "really": "realy",
    "definitely": "definately", "environment": "enviroment", "government": "goverment", "which": "wich",
    "until": "untill", "a lot": "alot", "different": "diffrent", "probably": "probly", "there": "their",
    "would": "whould", "argue": "arguee", "opinion": "opinon", "especially": "especialy",
}
_MISSPELL_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _MISSPELL) + r")\b")
_CAP_I_RE = re.compile(r"\bI\b")
_CONTRACT = (
    (re.compile(r"\b(do|does|did|is|are|was|would|could|should) not\b"), r"\1n't"),
    (re.compile(r"\b(can ?not)\b"), "can't"),
    (re.compile(r"\bwill not\b"), "won't"),
    (re.compile(r"\b([Ii]t|[Tt]hat|[Tt]here) is\b"), r"\1's"),
    (re.compile(r"\bI am\b"), "I'm"),
)


@dataclass(frozen=True)
class Element:
    """One annotated discourse element: class, character offsets ``[start, end)`` and its competition word indices."""

    cls: str
    start: int
    end: int
    words: tuple[int, ...] = ()


@dataclass(frozen=True)
class Essay:
    """A generated essay: its text, annotated elements in order, and the prompt it answers."""

    text: str
    elements: tuple[Element, ...]
    prompt: str


@dataclass(frozen=True)
class _Style:
    """Per-writer habits, drawn once per essay, so that noise is consistent within an essay like in real data."""

    para_sep: str
    sent_sep: str
    lower_start: float  # share of sentences starting lowercase
    typo_rate: float  # typos per word
    contractions: bool
    drop_apostrophes: bool
    small_i: bool
    all_lower: bool
    trailing: str


def _draw_style(rng: random.Random) -> _Style:
    u = rng.random()
    para_sep = "\n\n" if u < 0.66 else " \n\n" if u < 0.78 else "\n" if u < 0.88 else "\n\n\n" if u < 0.92 else " "
    return _Style(
        para_sep=para_sep,
        sent_sep="  " if rng.random() < 0.06 else " ",
        lower_start=rng.choice((0.0, 0.0, 0.0, 0.05, 0.15, 0.5)),
        typo_rate=rng.choice((0.0, 0.0, 0.003, 0.008, 0.015, 0.03)),
        contractions=rng.random() < 0.5,
        drop_apostrophes=rng.random() < 0.25,
        small_i=rng.random() < 0.1,
        all_lower=rng.random() < 0.015,
        trailing=rng.choice(("", "", "", "", "\n", " ", "\n\n")),
    )


# One paragraph item: (class, or None for unannotated text; text; glue placed before it).
_Item = tuple[str | None, str, str]


class _Slots(dict):
    """``str.format_map`` mapping that draws a slot value the first time a template asks for it."""

    def __init__(self, writer: _Writer, **fixed: str) -> None:
        super().__init__(fixed)
        self.writer = writer

    def __missing__(self, key: str) -> str:
        value = self.writer.draw(key)
        self[key] = value
        return value


class _Writer:
    """Writes one essay: its sentences, its element texts and its paragraph layout."""

    def __init__(self, rng: random.Random, prompt: Prompt) -> None:
        self.rng = rng
        self.p = prompt
        self.style = _draw_style(rng)
        pro = rng.random() < 0.7
        self.stances = prompt.pro if pro else prompt.con
        self.ostances = prompt.con if pro else prompt.pro
        self.reasons = list(prompt.pro_reasons if pro else prompt.con_reasons)
        self.counters = list(prompt.con_reasons if pro else prompt.pro_reasons)
        self.facts = list(prompt.facts)
        rng.shuffle(self.reasons)
        rng.shuffle(self.facts)
        self.n_reason = 0
        self.n_fact = 0
        self.used = 0  # words written so far
        self.pools: dict[str, tuple[str, ...]] = {
            "stance": self.stances, "ostance": self.ostances, "counter": tuple(self.counters),
            "reason": tuple(self.reasons), "reason2": tuple(self.reasons), "topic": prompt.topic,
            "people": prompt.people, "noun": prompt.nouns, "action": prompt.actions, "source": prompt.sources,
            "rel": _RELATIVES, "name": _NAMES,
        }

    # ---- slot values ----
    def pick(self, seq: tuple[str, ...] | list[str]) -> str:
        return seq[int(self.rng.random() * len(seq))]

    def next_reason(self) -> str:
        """Reasons cycle through a shuffled list, so that an essay's claims differ."""
        value = self.reasons[self.n_reason % len(self.reasons)]
        self.n_reason += 1
        return value

    def draw(self, key: str) -> str:
        """A value for template slot ``key`` (``Key``: the same, capitalised)."""
        if key[0].isupper():
            return _cap(self.draw(key.lower()))
        pool = self.pools.get(key)
        if pool is not None:
            return self.pick(pool)
        if key == "fact":  # facts cycle too: an essay rarely repeats one
            value = self.facts[self.n_fact % len(self.facts)]
            self.n_fact += 1
            return value
        if key == "num":
            return str(self.rng.randint(2, 95))
        if key == "par":
            return str(self.rng.randint(1, 9))
        raise KeyError(f"unknown template slot {{{key}}}")

    def lognorm(self, median: float, sigma: float, lo: int, hi: int) -> int:
        """A log-normal length in words, clipped to ``[lo, hi]``."""
        return int(min(hi, max(lo, median * math.exp(sigma * self.rng.gauss(0.0, 1.0)))))

    def item(self, cls: str | None, text: str, glue: str | None = None) -> _Item:
        """A paragraph item with this writer's noise; ``glue`` defaults to the sentence separator."""
        text = self.noisy(text)
        self.used += text.count(" ") + 1
        return (cls, text, self.style.sent_sep if glue is None else glue)

    # ---- sentences ----
    def sentence(self, templates: tuple[str, ...], **fixed: str) -> str:
        """A filled template, capitalised unless this writer starts it lowercase."""
        return self.start_case(self.pick(templates).format_map(_Slots(self, **fixed)))

    def start_case(self, text: str) -> str:
        if self.rng.random() < self.style.lower_start:
            return text[:1].lower() + text[1:]
        return text[:1].upper() + text[1:]

    def sentences(self, first: tuple[str, ...], more: tuple[str, ...], budget: int, **fixed: str) -> str:
        """Sentences (first from ``first``, then from ``more``) until about ``budget`` words, none repeated."""
        out = [self.sentence(first, **fixed)]
        words = out[0].count(" ") + 1
        while words < budget:
            s = self.sentence(more, **fixed)
            if s in out:  # one more draw; a student may still repeat themselves now and then
                s = self.sentence(more, **fixed)
            if words + (s.count(" ") + 1) / 2 > budget and len(out) > 1:
                break
            out.append(s)
            words += s.count(" ") + 1
        return self.style.sent_sep.join(out)

    def noisy(self, text: str) -> str:
        """Writer habits and noise: contractions, dropped apostrophes, lowercase 'i', misspellings, letter swaps."""
        st = self.style
        rng = self.rng
        if st.contractions:
            for pattern, repl in _CONTRACT:
                text = pattern.sub(repl, text)
        if st.all_lower:
            text = text.lower()
        if st.drop_apostrophes:
            text = text.replace("'", "")
        if st.small_i:
            text = _CAP_I_RE.sub("i", text)
        if st.typo_rate:
            n_words = text.count(" ") + 1
            n_typos = int(n_words * st.typo_rate + rng.random())
            if n_typos:
                if rng.random() < 0.4:
                    text = _MISSPELL_RE.sub(lambda m: _MISSPELL[m.group(1)] if rng.random() < 0.5 else m.group(1),
                                            text, count=n_typos)
                else:
                    words = text.split(" ")
                    for _ in range(n_typos):
                        i = int(rng.random() * len(words))
                        words[i] = _typo(words[i], rng)
                    text = " ".join(words)
        return text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _typo(word: str, rng: random.Random) -> str:
    """One letter swap, drop or double inside a word (never touching its edges' whitespace)."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randint(1, len(word) - 3)
    kind = rng.random()
    if kind < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.75:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def _compose(w: _Writer, target_words: int) -> list[list[_Item]]:
    """Plan and write the paragraphs of one essay of about ``target_words`` words."""
    r = w.rng.random
    scale = max(1.0, target_words / 400) ** 0.4  # long essays have longer elements, not only more of them
    w.used = 0
    paras: list[list[_Item]] = []
    letter = bool(w.p.greetings) and r() < 0.55
    if letter:
        paras.append([w.item(None, w.pick(w.p.greetings), "")])
    elif r() < 0.08:
        paras.append([w.item(None, w.pick(w.p.titles), "")])
    paras.extend(_introduction(w, scale))
    has_counter = r() < 0.26
    has_conclusion = r() < 0.845
    reserve = (40 * scale if has_conclusion else 0) + (45 if has_counter else 0)
    body, ev_budget = _body(w, max(40.0, target_words - w.used - reserve), scale)
    if has_counter:
        where = len(body) if r() < 0.7 else int(r() * (len(body) + 1))
        body.insert(where, _counter_paragraph(w, scale, ev_budget))
    paras.extend(body)
    concl = _conclusion(w, scale, has_conclusion)
    if concl:
        paras.append(concl)
    if (letter and r() < 0.8) or r() < 0.04:
        paras.append([w.item(None, w.sentence(_CLOSING), "")])
    return paras


def _introduction(w: _Writer, scale: float) -> list[list[_Item]]:
    """Hook (Lead), then the Position, sometimes with the claims listed in the same sentence."""
    r = w.rng.random
    intro: list[_Item] = []
    if r() < 0.59:
        intro.append(w.item("Lead", w.sentences(_LEAD_OPEN, _LEAD_MORE, w.lognorm(38 * scale, 0.45, 10, 160))))
    elif r() < 0.15:  # a hook the annotators left unlabelled
        intro.append(w.item(None, w.sentences(_LEAD_OPEN, _LEAD_MORE, w.lognorm(25, 0.4, 8, 60))))
    if intro and r() < 0.25:  # background the annotators did not count as part of the Lead
        intro.append(w.item(None, w.sentences(_LEAD_MORE, _LEAD_MORE, w.lognorm(14, 0.5, 5, 50))))
    own_para = bool(intro) and r() < 0.2
    position: list[_Item] = []
    if r() < 0.962:
        if r() < 0.21:  # "I think X because A, B and C": the Position and each reason annotated separately
            n_claims = 2 if r() < 0.45 else 3
            position.append(w.item("Position", w.sentence(_POSITION_CUED).rstrip(".")))
            glue_first = " because " if r() < 0.75 else ", because "
            for i in range(n_claims):
                last = i == n_claims - 1
                glue = glue_first if i == 0 else (w.pick((" and ", ", and ")) if last else ", ")
                position.append(w.item("Claim", w.next_reason() + ("." if last else ""), glue))
        else:
            position.append(w.item("Position", w.sentence(_POSITION)))
    if r() < 0.1:
        position.append(w.item(None, w.sentence(_FILLER)))
    if own_para and position:
        return [intro, position]
    return [intro + position] if intro or position else []


def _body(w: _Writer, body_words: float, scale: float) -> tuple[list[list[_Item]], float]:
    """Body paragraphs of Claims and Evidence filling about ``body_words``; also returns the Evidence budget."""
    rng = w.rng
    r = rng.random
    k = max(1, int(round(body_words / (rng.uniform(97, 164) * scale**0.5))))
    patterns = [rng.choices(_BODY_PATTERNS, _BODY_WEIGHTS)[0] for _ in range(k)]
    if not any("E" in p for p in patterns):
        patterns[0] = "CE"
    n_claims = sum(p.count("C") for p in patterns)
    n_evidence = sum(p.count("E") for p in patterns)
    # part of the body is left to unannotated remarks, as in the real essays
    ev_budget = max(14.0, (0.88 * body_words - 10 * n_claims) / n_evidence)
    body: list[list[_Item]] = []
    i_claim = 0
    for pattern in patterns:
        para: list[_Item] = []
        if r() < 0.14:
            para.append(w.item(None, w.sentence(_FILLER)))
        prev = None
        for kind in pattern:
            if kind == "C":
                para.extend(_claim(w, i_claim, n_claims))
                i_claim += 1
            else:
                text = w.sentences(_EVIDENCE_OPEN, _EVIDENCE_MORE, int(ev_budget * rng.uniform(0.55, 1.45)))
                glue = w.style.sent_sep
                if prev == "C" and r() < 0.22:  # no sentence boundary between the Claim and its Evidence
                    cls, claim_text, claim_glue = para[-1]
                    para[-1] = (cls, claim_text.rstrip("."), claim_glue)
                    glue = w.pick(_GLUE_CLAIM_EVIDENCE)
                    text = text[:1].lower() + text[1:]
                para.append(w.item("Evidence", text, glue))
                if r() < 0.2:  # a closing remark left unannotated
                    para.append(w.item(None, w.sentences(_EVIDENCE_MORE, _EVIDENCE_MORE, w.lognorm(16, 0.5, 4, 50))))
            prev = kind
        if r() < 0.1:
            para.append(w.item(None, w.sentence(_FILLER if r() < 0.5 else _CONCLUDE_MORE)))
        body.append(para)
    if r() < 0.08:  # a whole paragraph the annotators left unlabelled
        ramble = w.sentences(_FILLER, _EVIDENCE_MORE + _FILLER, w.lognorm(45 * scale, 0.5, 12, 160))
        body.insert(int(r() * (len(body) + 1)), [w.item(None, ramble)])
    return body, ev_budget


def _claim(w: _Writer, index: int, total: int) -> list[_Item]:
    """Body Claim number ``index`` of ``total``, with an ordinal connective that is sometimes part of it."""
    r = w.rng.random
    text = w.sentence(_CLAIM_BODY, reason=w.next_reason())
    if r() < 0.6:
        conn = w.start_case(w.pick(_CLAIM_FIRST if index == 0 else _CLAIM_LAST if index == total - 1 else _CLAIM_NEXT))
        lowered = text[:1].lower() + text[1:]
        if r() < 0.65:
            return [w.item("Claim", conn + " " + lowered)]
        return [w.item(None, conn), w.item("Claim", lowered, " ")]
    return [w.item("Claim", text)]


def _counter_paragraph(w: _Writer, scale: float, ev_budget: float) -> list[_Item]:
    """One or two Counterclaims, most answered by a Rebuttal, sometimes backed by Evidence."""
    r = w.rng.random
    para: list[_Item] = []
    for _ in range(2 if r() < 0.39 else 1):
        counter = w.pick(w.counters)
        if r() >= 0.725:  # a Counterclaim left without a Rebuttal
            cc = w.sentences(_COUNTER, _COUNTER_MORE, w.lognorm(16, 0.4, 6, 50), counter=counter)
            para.append(w.item("Counterclaim", cc))
            continue
        budget = w.lognorm(20 * scale**0.5, 0.45, 6, 70)
        if r() < 0.15:  # "Although A, B." in one sentence
            reb = w.sentences(_REBUTTAL_CLAUSE, _EVIDENCE_MORE, budget)
            para.append(w.item("Counterclaim", w.start_case(f"although {counter},")))
            para.append(w.item("Rebuttal", reb[:1].lower() + reb[1:], " "))
        else:
            reb = w.sentences(_REBUTTAL, _EVIDENCE_MORE, budget)
            cc = w.sentences(_COUNTER, _COUNTER_MORE, w.lognorm(16, 0.4, 6, 50), counter=counter)
            para.append(w.item("Counterclaim", cc))
            para.append(w.item("Rebuttal", reb))
        if r() < 0.3:
            para.append(w.item("Evidence", w.sentences(_EVIDENCE_OPEN, _EVIDENCE_MORE, int(ev_budget))))
    return para


def _conclusion(w: _Writer, scale: float, annotated: bool) -> list[_Item]:
    """The closing paragraph: a Concluding Statement (rarely a restated Position), or an unlabelled ending."""
    r = w.rng.random
    concl: list[_Item] = []
    if annotated:
        text = w.sentences(_CONCLUDE, _CONCLUDE_MORE, w.lognorm(38 * scale, 0.45, 8, 160))
        concl.append(w.item("Concluding Statement", text))
        if r() < 0.025:
            concl.append(w.item("Position", w.sentence(_POSITION)))
        if r() < 0.02:
            concl.append(w.item(None, w.sentence(_FILLER)))
            concl.append(w.item("Concluding Statement", w.sentence(_CONCLUDE_MORE)))
        if r() < 0.15:
            concl.append(w.item(None, w.sentence(_CONCLUDE_MORE + _FILLER)))
    elif r() < 0.5:  # an ending the annotators did not label
        concl.append(w.item(None, w.sentences(_CONCLUDE, _CONCLUDE_MORE, w.lognorm(20, 0.5, 6, 80))))
    return concl


# Body paragraph shapes: C = Claim, E = Evidence (weights tuned so that the class shares match the real data).
_BODY_PATTERNS = ("CE", "CEE", "CCE", "CECE", "C", "EC", "CEC", "E", "ECE")
_BODY_WEIGHTS = (0.52, 0.11, 0.06, 0.08, 0.05, 0.04, 0.05, 0.05, 0.04)


def _render(paras: list[list[_Item]], style: _Style) -> tuple[str, list[Element]]:
    """Join paragraphs into the essay text and record each element's character offsets."""
    parts: list[str] = []
    elements: list[Element] = []
    pos = 0
    for pi, para in enumerate(paras):
        if not para:
            continue
        if pi:
            parts.append(style.para_sep)
            pos += len(style.para_sep)
        for ii, (cls, text, glue) in enumerate(para):
            if ii:
                parts.append(glue)
                pos += len(glue)
            if cls is not None:
                elements.append(Element(cls, pos, pos + len(text)))
            parts.append(text)
            pos += len(text)
    parts.append(style.trailing)
    return "".join(parts), elements


def _jitter(rng: random.Random, text: str, el: Element) -> Element:
    """Imperfect annotation offsets as in the real data: mid-word starts/ends, surrounding whitespace.

    Drawn for ~6.5% of rows; about 4% keep it (the rest would make words overlap a neighbour's).
    """
    u = rng.random()
    if u >= 0.065:
        return el
    s, e = el.start, el.end
    if u < 0.024:  # starts one or two characters into its first word
        s += 1 if rng.random() < 0.8 else 2
    elif u < 0.032:  # starts on the whitespace before it
        s = max(0, s - 1)
    elif u < 0.047:  # ends one or two characters before the end of its last word
        e -= 1 if rng.random() < 0.7 else 2
    elif u < 0.060:  # includes the whitespace after it
        while e < len(text) and text[e].isspace() and e - el.end < 3:
            e += 1
    else:  # runs into the next word
        while e < len(text) and text[e].isspace():
            e += 1
        e = min(len(text), e + rng.randint(1, 3))
    return Element(el.cls, s, e)


def generate_essay(
    rng: random.Random, target_words: int = 400, prompt: Prompt | None = None, min_words: int = MIN_WORDS
) -> Essay:
    """One synthetic essay of about ``target_words`` words, at least ``min_words`` (``prompt`` drawn when not given).

    Element offsets are already jittered like the real annotations; every element has a non-empty word span and
    no two elements share a word under the competition's offsets rule.
    """
    if prompt is None:
        prompt = rng.choices(PROMPTS, weights=[p.weight for p in PROMPTS])[0]
    w = _Writer(rng, prompt)
    for _ in range(20):  # a plan that falls short is drawn again
        text, clean = _render(_compose(w, target_words), w.style)
        if len(text.split()) >= min_words:
            break
    spans = [offsets_to_word_indices(text, el.start, el.end) for el in clean]
    for i, span in enumerate(spans):
        if not span or (i and spans[i - 1][-1] >= span[0]):
            raise RuntimeError(f"generator bug: element {i} of a {prompt.name!r} essay has bad words {span}")
    elements = list(clean)
    for i, el in enumerate(clean):
        jittered = _jitter(rng, text, el)
        if jittered is el:
            continue
        span = offsets_to_word_indices(text, jittered.start, jittered.end)
        # keep the jitter only if the words stay non-empty and clear of the neighbours (else keep clean offsets)
        if span and (i == 0 or spans[i - 1][-1] < span[0]) and (i == len(clean) - 1 or span[-1] < spans[i + 1][0]):
            elements[i] = jittered
            spans[i] = span
    return Essay(text, tuple(Element(e.cls, e.start, e.end, tuple(s)) for e, s in zip(elements, spans)), prompt.name)


def sample_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Target essay lengths in words: most ~150-700, a long tail (~14% over 790 words), one >= 2,000 in big sets."""
    part = rng.random(n)
    main = 255 * np.exp(0.33 * rng.standard_normal(n))
    long = 1030 * np.exp(0.26 * rng.standard_normal(n))
    very = 1550 * np.exp(0.18 * rng.standard_normal(n))
    lengths = np.where(part < 0.81, main, np.where(part < 0.985, long, very))
    lengths = np.clip(lengths, 140, 2600)
    return lengths.astype(np.int64)


def _unique_ids(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """Essay ids like the real ones: 12 upper-case hex digits."""
    out = []
    while len(out) < n:
        value = f"{rng.getrandbits(48):012X}"
        if value not in taken:
            taken.add(value)
            out.append(value)
    return out


def generate_corpus(n: int, seed: int = 0, n_test: int = 5) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """The corpus in memory: ``train.csv`` rows, train texts by id, test texts by id."""
    if n < 1 or n_test < 0:
        raise ValueError(f"need n >= 1 and n_test >= 0, got n={n}, n_test={n_test}")
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    lengths = sample_lengths(nprng, n + n_test)
    # every sizeable corpus gets one essay of >= 2,000 words, so that the far end of the tail is exercised
    longest = int(np.argmax(lengths[:n])) if n >= LONGEST_FROM else -1
    if longest >= 0:
        lengths[longest] = max(int(lengths[longest]), 2300)
    taken: set[str] = set()
    ids = _unique_ids(rng, n + n_test, taken)
    rows: dict[str, list] = {c: [] for c in TRAIN_COLUMNS}
    train: dict[str, str] = {}
    test: dict[str, str] = {}
    used_did: set[int] = set()
    for i, essay_id in enumerate(ids):
        essay_rng = random.Random(rng.getrandbits(64))
        essay = generate_essay(essay_rng, int(lengths[i]), min_words=LONGEST_WORDS if i == longest else MIN_WORDS)
        if i >= n:
            test[essay_id] = essay.text
            continue
        train[essay_id] = essay.text
        counts: dict[str, int] = {}
        # discourse ids are millisecond timestamps in the real data, rising within an essay
        did = essay_rng.randint(1_617_000_000_000, 1_627_000_000_000)
        for el in essay.elements:
            did += essay_rng.randint(1, 60_000)
            while did in used_did:
                did += 1
            used_did.add(did)
            counts[el.cls] = counts.get(el.cls, 0) + 1
            rows["id"].append(essay_id)
            rows["discourse_id"].append(float(did))
            rows["discourse_start"].append(float(el.start))
            rows["discourse_end"].append(float(el.end))
            rows["discourse_text"].append(essay.text[el.start:el.end])
            rows["discourse_type"].append(el.cls)
            rows["discourse_type_num"].append(f"{el.cls} {counts[el.cls]}")
            rows["predictionstring"].append(to_predictionstring(el.words))
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS)), train, test


def save_corpus(out_dir: str | Path, df: pd.DataFrame, train: dict[str, str], test: dict[str, str]) -> Path:
    """Write a generated corpus in the Kaggle layout; refuses a folder that holds essays of another corpus."""
    out = Path(out_dir)
    for sub, texts in (("train", train), ("test", test)):
        folder = out / sub
        stale = sorted(p.name for p in folder.glob("*.txt") if p.stem not in texts) if folder.is_dir() else []
        if stale:
            raise FileExistsError(
                f"{folder} already holds {len(stale)} essays of another corpus (e.g. {stale[0]}); "
                "choose an empty output folder or delete that one first"
            )
    for sub, texts in (("train", train), ("test", test)):
        folder = out / sub
        folder.mkdir(parents=True, exist_ok=True)
        for essay_id, text in texts.items():
            (folder / f"{essay_id}.txt").write_text(text, encoding="utf-8", newline="")
    df.to_csv(out / "train.csv", index=False)
    # like Kaggle's: one placeholder prediction per test essay
    sub_rows = [(essay_id, "Lead", "1 2 3 4 5") for essay_id in test]
    submission = pd.DataFrame(sub_rows, columns=["id", "class", "predictionstring"])
    submission.to_csv(out / "sample_submission.csv", index=False)
    logger.info("wrote %d train and %d test essays to %s", len(train), len(test), out)
    return out


def write_corpus(out_dir: str | Path, n: int, seed: int = 0, n_test: int = 5) -> Path:
    """Write ``n`` labelled and ``n_test`` unlabelled essays in the Kaggle layout into ``out_dir``; returns it.

    Files: ``train.csv``, ``train/<id>.txt``, ``test/<id>.txt``, ``sample_submission.csv``. Same seed, same bytes.
    """
    return save_corpus(out_dir, *generate_corpus(n, seed, n_test))


def summarize(df: pd.DataFrame, train: dict[str, str], n_test: int = 0) -> str:
    """A short human-readable summary of a corpus: counts and shares per class next to the real ones, lengths."""
    words = np.array([len(t.split()) for t in train.values()])
    counts = df["discourse_type"].value_counts()
    real_total = sum(REAL_CLASS_COUNTS.values())
    lines = [
        f"essays: {len(words)} train + {n_test} test, elements: {len(df)} "
        f"({len(df) / max(1, len(words)):.2f} per essay; real {real_total / REAL_ESSAYS:.2f})",
        f"{'class':<22}{'count':>8}{'share':>8}{'real':>8}",
    ]
    for cls in sorted(CLASSES, key=lambda c: -REAL_CLASS_COUNTS[c]):
        c = int(counts.get(cls, 0))
        lines.append(f"{cls:<22}{c:>8}{c / max(1, len(df)):>8.3f}{REAL_CLASS_COUNTS[cls] / real_total:>8.3f}")
    if len(words):
        long_share = float(np.mean(words * TOKENS_PER_WORD > LONG_TOKENS))
        lines.append(
            f"words per essay: mean {words.mean():.0f}, min {words.min()}, max {words.max()}; "
            f"> {LONG_TOKENS} tokens (~{TOKENS_PER_WORD} tokens/word): {long_share:.1%}"
        )
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-ner sample",
        description="Write a synthetic corpus of student essays in the Kaggle Feedback Prize layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--n", type=int, default=1000, help="number of labelled essays (real set: 15594)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes")
    parser.add_argument("--n-test", type=int, default=5, help="number of unlabelled test essays")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    from feedback_ner.cli import setup_logging  # the one logging set-up of every command (issue 17)

    setup_logging()
    if args.n < 1 or args.n_test < 0:
        make_parser().error(f"--n must be >= 1 and --n-test >= 0 (got {args.n}, {args.n_test})")
    t0 = time.perf_counter()
    df, train, test = generate_corpus(args.n, args.seed, args.n_test)
    try:
        out = save_corpus(args.out, df, train, test)
    except FileExistsError as err:
        raise SystemExit(f"feedback-ner sample: {err}") from None
    print(summarize(df, train, len(test)))
    print(f"written to {out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
