"""Sending SMS one-time codes: a small gateway interface, Aliyun SMS, and a local fake of Aliyun's API.

gateway: the interface; service: the gateway in force; aliyun: SendSms with Aliyun's request
signing; dev: the fake server (``python -m loyalty.sms``) that records what it was asked to send."""
