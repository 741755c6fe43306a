Subject: [#{{TICKET}}] Agent {{AGENT}} is now handling ticket #{{TICKET}}

Hello,

Agent {{AGENT}} is now handling ticket #{{TICKET}}, "{{SUBJECT}}".

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
