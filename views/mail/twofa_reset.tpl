Subject: Your two-factor sign-in was reset

Hello,

An administrator of {{SITE_NAME}} reset the two-factor sign-in of your
account. Your authenticator app's code and your recovery codes no longer
work. Set it up again at:

  {{BASE_URL}}/account/2fa

If you did not ask for this, tell us at once.

-- 
{{SITE_NAME}}
