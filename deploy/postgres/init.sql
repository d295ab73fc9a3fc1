-- One database per gridsync component (docker-compose's postgres service runs this once, on an
-- empty data folder). billing-consumer also uses `tg` for the control numbers it shares with
-- tg-producer.
-- Generated from schemas/topics.toml: `gridsync catalog postgres > deploy/postgres/init.sql`.
CREATE DATABASE tg;
CREATE DATABASE amp;
CREATE DATABASE notifications;
CREATE DATABASE billing;
CREATE DATABASE exceptions;
CREATE DATABASE distribution;
CREATE DATABASE audit;
